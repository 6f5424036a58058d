//! A small Icecast-style radio server (issue 11), for the live test and `cargo xtask demo`:
//! it answers `GET` with `HTTP/1.0 200 OK`, `icy-*` headers and, when the client sent
//! `Icy-MetaData: 1`, a metadata block every `metaint` audio bytes, titled with the track
//! playing. The audio is MPEG-1 Layer III frames of noise, track after track. After the
//! last track it keeps the connection open, as a live stream does, until the client
//! leaves or [`RadioServer::hang_up`] is called.

use std::{
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::Netns;

/// What the station plays.
#[derive(Clone, Debug)]
pub struct Programme {
    /// `icy-name`.
    pub station: String,
    /// Audio bytes between metadata blocks.
    pub metaint: usize,
    /// Each track's title and its length in audio bytes (rounded up to whole frames).
    pub tracks: Vec<(String, usize)>,
    /// Seed of the noise in the frames.
    pub seed: u64,
}

impl Programme {
    /// The audio of every track, and where each starts.
    pub fn audio(&self) -> (Vec<u8>, Vec<usize>) {
        let mut x = self.seed | 1;
        let mut audio = Vec::new();
        let mut starts = Vec::new();
        let mut n = 0u32;
        for (_, len) in &self.tracks {
            starts.push(audio.len());
            let end = audio.len() + len;
            while audio.len() < end {
                let pad = u8::from(n % 3 == 2);
                n += 1;
                audio.extend_from_slice(&[0xFF, 0xFB, 0x90 | pad << 1, 0x64]);
                for _ in 0..413 + usize::from(pad) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    audio.push((x >> 33) as u8 & 0x7F);
                }
            }
        }
        (audio, starts)
    }

    /// The body sent to a client that asked for metadata: `audio` with a block after
    /// every `metaint` bytes, carrying the title of the track playing at that point.
    pub fn body(&self) -> Vec<u8> {
        let (audio, starts) = self.audio();
        let mut body = Vec::with_capacity(audio.len() + audio.len() / self.metaint * 64);
        let mut at = 0;
        for piece in audio.chunks(self.metaint) {
            body.extend_from_slice(piece);
            at += piece.len();
            if piece.len() < self.metaint {
                break;
            }
            let playing = starts.iter().rposition(|&s| s < at).unwrap_or(0);
            let text = format!("StreamTitle='{}';", self.tracks[playing].0);
            let l = text.len().div_ceil(16);
            body.push(l as u8);
            body.extend_from_slice(text.as_bytes());
            body.resize(body.len() + 16 * l - text.len(), 0);
        }
        body
    }
}

/// The server: one client at a time, each served the whole programme. Stopped on drop.
#[derive(Debug)]
pub struct RadioServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: mpsc::Receiver<usize>,
    handle: Option<JoinHandle<()>>,
}

impl RadioServer {
    /// Listen on `addr` inside `ns` and serve `programme`.
    ///
    /// # Errors
    /// Binding failed.
    pub fn start(ns: &Netns, addr: SocketAddr, programme: Programme) -> io::Result<Self> {
        let listener = ns.enter(|| TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, sent) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("radio".into())
            .spawn(move || serve(&listener, &programme, &flag, &tx))?;
        Ok(Self {
            addr,
            stop,
            sent,
            handle: Some(handle),
        })
    }

    /// Wait until a client got the whole programme; the body bytes sent.
    ///
    /// # Errors
    /// Nobody got it within `timeout`.
    pub fn wait_sent(&self, timeout: Duration) -> io::Result<usize> {
        self.sent
            .recv_timeout(timeout)
            .map_err(|e| io::Error::new(io::ErrorKind::TimedOut, format!("radio: {e}")))
    }

    /// Close every connection and stop.
    pub fn hang_up(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for RadioServer {
    fn drop(&mut self) {
        self.hang_up();
    }
}

fn serve(listener: &TcpListener, p: &Programme, stop: &AtomicBool, sent: &mpsc::Sender<usize>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = client(conn, p, stop, sent);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return,
        }
    }
}

/// A listener's request head, read in blocking mode (5 s per read): up to its blank line,
/// at most 16 KiB.
pub fn read_request_head(conn: &mut TcpStream) -> io::Result<Vec<u8>> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// Serve one client: the head, the programme (paced a little, as a stream is), then say
/// so on `sent` and hold the connection open until the client leaves, `stop`, or a
/// minute.
fn client(
    mut conn: TcpStream,
    p: &Programme,
    stop: &AtomicBool,
    sent: &mpsc::Sender<usize>,
) -> io::Result<()> {
    let head = read_request_head(&mut conn)?;
    let meta = String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("icy-metadata: 1");
    let mut out = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-name: {}\r\nicy-genre: Test\r\n\
         icy-br: 128\r\nicy-pub: 0\r\n",
        p.station
    );
    let body = if meta {
        out += &format!("icy-metaint: {}\r\n", p.metaint);
        p.body()
    } else {
        p.audio().0
    };
    out += "\r\n";
    conn.write_all(out.as_bytes())?;
    for piece in body.chunks(32 * 1024) {
        conn.write_all(piece)?;
        thread::sleep(Duration::from_millis(2));
    }
    conn.flush()?;
    let _ = sent.send(body.len());
    let deadline = Instant::now() + Duration::from_secs(60);
    conn.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue11_programme_body_has_a_block_every_metaint_bytes() {
        let p = Programme {
            station: "Test Radio".into(),
            metaint: 1000,
            tracks: vec![("A".into(), 2500), ("B".into(), 2500)],
            seed: 1,
        };
        let (audio, starts) = p.audio();
        assert_eq!(starts[0], 0);
        assert!(starts[1] >= 2500 && audio.len() >= 5000);
        let body = p.body();
        // The first block follows 1000 audio bytes and names A.
        assert_eq!(body[1000], 1);
        assert!(body[1001..].starts_with(b"StreamTitle='A';"));
    }
}
