//! What a body is, known by its first bytes.
//!
//! Audio first, with frame validation ([`super::frames`]): an ID3v2 tag is skipped by its
//! size and what follows decides between MP3 and ADTS AAC; MPEG audio and ADTS need two
//! consecutive valid frame headers at the start (three when searched for inside a
//! stream), so random bytes are not called audio. MPEG-TS is told by its sync bytes,
//! and as `audio/mp2t` when its program map lists audio streams only (HLS radio). HLS
//! playlists by `#EXTM3U`. Everything else (Ogg, FLAC, WAV, MP4/M4A, images, PDF,
//! archives, video, HTML…) by the signatures of the `infer` crate, whose own MP3 and AAC
//! checks (a sync word alone) are not trusted.
//!
//! Detection looks at a bounded prefix ([`PREFIX`] bytes at most) and at nothing else.

use super::frames::{self, Chain, FrameKind};

/// The most bytes detection ever needs: enough for an ID3 tag of a few KiB and two
/// frames of the longest kind after it.
pub const PREFIX: usize = 16 * 1024;

/// Without a signature that needs more, the prefix is decided at this many bytes.
const SIGNATURE_BYTES: usize = 512;

/// A detected type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    /// Media type, lower case (`audio/mpeg`).
    pub mime: &'static str,
    /// File extension, without the dot.
    pub ext: &'static str,
    /// The frames inside, when the type is framed audio.
    pub frames: Option<FrameKind>,
}

impl Detected {
    const fn framed(kind: FrameKind) -> Self {
        Self {
            mime: kind.mime(),
            ext: match kind {
                FrameKind::Mpeg => "mp3",
                FrameKind::Adts => "aac",
            },
            frames: Some(kind),
        }
    }

    const fn plain(mime: &'static str, ext: &'static str) -> Self {
        Self {
            mime,
            ext,
            frames: None,
        }
    }
}

/// Detection's answer so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// More bytes could change the answer.
    More,
    /// Decided: the type, or `None` when nothing is recognised.
    Done(Option<Detected>),
}

/// What `prefix` is. `at_end`: no more bytes will come (the body ended, or a gap or the
/// [`PREFIX`] bound stops the looking). `scan`: the bytes may start anywhere in a stream
/// (a radio stream), so framed audio is searched for inside the prefix too.
pub fn detect(prefix: &[u8], at_end: bool, scan: bool) -> Verdict {
    let at_end = at_end || prefix.len() >= PREFIX;
    // An ID3v2 tag: what follows it decides.
    let body = match frames::id3_len(prefix) {
        frames::Id3::Short if !at_end => return Verdict::More,
        frames::Id3::Short | frames::Id3::None => prefix,
        frames::Id3::Tag(tag) => {
            let tag = usize::try_from(tag).unwrap_or(usize::MAX);
            if tag.saturating_add(frames::HEADER_MAX) > PREFIX {
                // A tag too large to look past (cover art): the tag is the evidence.
                return Verdict::Done(Some(Detected::framed(FrameKind::Mpeg)));
            }
            if prefix.len() <= tag {
                return if at_end {
                    Verdict::Done(Some(Detected::framed(FrameKind::Mpeg)))
                } else {
                    Verdict::More
                };
            }
            // Taggers sometimes pad beyond the declared size.
            let rest = &prefix[tag..];
            let zeros = rest.iter().take_while(|&&b| b == 0).count();
            return after_tag(&rest[zeros..], at_end);
        }
    };
    match frames::chain_at(body, 2) {
        Chain::Yes(h) => return Verdict::Done(Some(Detected::framed(h.kind))),
        Chain::Short if !at_end => return Verdict::More,
        Chain::Short | Chain::No => {}
    }
    if let Some(v) = transport_stream(body, at_end) {
        return v;
    }
    if body.starts_with(b"#EXTM3U") {
        return Verdict::Done(Some(Detected::plain(
            "application/vnd.apple.mpegurl",
            "m3u8",
        )));
    }
    if scan {
        match frames::find_chain(body, 0, 3, None) {
            Ok((_, h)) => return Verdict::Done(Some(Detected::framed(h.kind))),
            Err(_) if !at_end => return Verdict::More,
            Err(_) => {}
        }
    }
    if body.len() < SIGNATURE_BYTES && !at_end {
        return Verdict::More;
    }
    Verdict::Done(signature(body))
}

/// After an ID3 tag: frames (two chained at the start, or three further in), else a
/// signature (FLAC files may carry ID3 too).
fn after_tag(rest: &[u8], at_end: bool) -> Verdict {
    match frames::chain_at(rest, 2) {
        Chain::Yes(h) => return Verdict::Done(Some(Detected::framed(h.kind))),
        Chain::Short if !at_end => return Verdict::More,
        Chain::Short => {
            // The body ends inside the second frame: one whole valid frame will do.
            if let frames::Parse::Valid(h) = frames::parse(rest)
                && h.len <= rest.len()
            {
                return Verdict::Done(Some(Detected::framed(h.kind)));
            }
        }
        Chain::No => {}
    }
    match frames::find_chain(rest, 0, 3, None) {
        Ok((_, h)) => Verdict::Done(Some(Detected::framed(h.kind))),
        Err(_) if !at_end => Verdict::More,
        Err(_) => Verdict::Done(signature(rest)),
    }
}

/// A signature from `infer`, less its MP3 and AAC guesses (a sync word is no proof: the
/// frame validators above already said no).
fn signature(b: &[u8]) -> Option<Detected> {
    let t = infer::get(b)?;
    match t.mime_type() {
        "audio/mpeg" | "audio/aac" => None,
        mime => Some(Detected::plain(mime, t.extension())),
    }
}

const TS_PACKET: usize = 188;

/// MPEG-TS: sync bytes at 0, 188 and 376. `audio/mp2t` when the program map lists
/// audio streams and no video; `video/mp2t` otherwise (or when no map is in the prefix).
fn transport_stream(b: &[u8], at_end: bool) -> Option<Verdict> {
    if b.first() != Some(&0x47) {
        return None;
    }
    if b.len() < 2 * TS_PACKET + 1 {
        return (!at_end).then_some(Verdict::More);
    }
    if b[TS_PACKET] != 0x47 || b[2 * TS_PACKET] != 0x47 {
        return None;
    }
    let audio = Detected::plain("audio/mp2t", "ts");
    let video = Detected::plain("video/mp2t", "ts");
    Some(match ts_audio_only(b) {
        Some(true) => Verdict::Done(Some(audio)),
        Some(false) => Verdict::Done(Some(video)),
        None if !at_end && b.len() < 32 * TS_PACKET => Verdict::More,
        None => Verdict::Done(Some(video)),
    })
}

/// The start of the PSI section a TS packet carries, if it starts one.
fn section(p: &[u8]) -> Option<(u16, &[u8])> {
    let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
    let unit_start = p[1] & 0x40 != 0;
    let mut at = 4;
    if p[3] & 0x20 != 0 {
        at += 1 + usize::from(*p.get(4)?);
    }
    if !unit_start {
        return None;
    }
    let pointer = usize::from(*p.get(at)?);
    Some((pid, p.get(at + 1 + pointer..)?))
}

/// Whether the first program map in `b` lists only audio streams: `None` when no
/// complete PAT and PMT are in `b`.
fn ts_audio_only(b: &[u8]) -> Option<bool> {
    let packets = b.chunks_exact(TS_PACKET).filter(|p| p[0] == 0x47);
    let mut pmt_pid = None;
    for p in packets {
        let Some((pid, s)) = section(p) else { continue };
        match (pid, pmt_pid) {
            (0, None) if s.first() == Some(&0x00) && s.len() >= 8 => {
                let len = usize::from(s[1] & 0x0F) << 8 | usize::from(s[2]);
                let end = (3 + len).saturating_sub(4).min(s.len());
                pmt_pid = s
                    .get(8..end)?
                    .chunks_exact(4)
                    .find(|e| e[0] != 0 || e[1] != 0)
                    .map(|e| u16::from(e[2] & 0x1F) << 8 | u16::from(e[3]));
            }
            (pid, Some(pmt)) if pid == pmt && s.first() == Some(&0x02) && s.len() >= 12 => {
                let len = usize::from(s[1] & 0x0F) << 8 | usize::from(s[2]);
                let end = (3 + len).saturating_sub(4).min(s.len());
                let info = usize::from(s[10] & 0x0F) << 8 | usize::from(s[11]);
                let mut at = 12 + info;
                let (mut audio, mut video) = (false, false);
                while at + 5 <= end {
                    match s[at] {
                        0x03 | 0x04 | 0x0F | 0x11 | 0x81 | 0x87 => audio = true,
                        0x01 | 0x02 | 0x10 | 0x1B | 0x24 | 0x42 | 0xEA => video = true,
                        _ => {}
                    }
                    at += 5 + (usize::from(s[at + 3] & 0x0F) << 8 | usize::from(s[at + 4]));
                }
                return Some(audio && !video);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MP3: [u8; 4] = [0xFF, 0xFB, 0x90, 0x64];

    fn mp3_frames(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut f = MP3.to_vec();
                f.extend((4..417).map(|j| (i * 7 + j) as u8));
                f
            })
            .collect()
    }

    fn adts_frames(n: usize, len: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                let mut f = vec![
                    0xFF,
                    0xF1,
                    0x50,
                    0x80 | (len >> 11) as u8,
                    (len >> 3) as u8,
                    ((len & 7) << 5) as u8 | 0x1F,
                    0xFC,
                ];
                f.resize(len, 0x21);
                f
            })
            .collect()
    }

    fn id3(body_len: u32) -> Vec<u8> {
        let mut t = b"ID3\x04\x00\x00".to_vec();
        t.extend([
            (body_len >> 21 & 0x7F) as u8,
            (body_len >> 14 & 0x7F) as u8,
            (body_len >> 7 & 0x7F) as u8,
            (body_len & 0x7F) as u8,
        ]);
        t.resize(10 + body_len as usize, 0x33);
        t
    }

    fn mime(b: &[u8]) -> Option<&'static str> {
        match detect(b, true, false) {
            Verdict::Done(d) => d.map(|d| d.mime),
            Verdict::More => panic!("at the end it decides"),
        }
    }

    #[test]
    fn issue11_framed_audio_with_and_without_id3() {
        assert_eq!(mime(&mp3_frames(3)), Some("audio/mpeg"));
        assert_eq!(
            mime(&[id3(300), mp3_frames(3)].concat()),
            Some("audio/mpeg")
        );
        assert_eq!(mime(&adts_frames(3, 200)), Some("audio/aac"));
        // HLS packed audio: an ID3 PRIV tag, then ADTS.
        assert_eq!(
            mime(&[id3(63), adts_frames(3, 200)].concat()),
            Some("audio/aac")
        );
        // Tag, zero padding beyond its size, then frames.
        assert_eq!(
            mime(&[id3(40), vec![0; 100], mp3_frames(2)].concat()),
            Some("audio/mpeg")
        );
        // A tag too large to look past: the tag decides.
        assert_eq!(mime(&id3(100_000)[..PREFIX]), Some("audio/mpeg"));
    }

    #[test]
    fn issue11_looks_like_mp3_for_4_bytes_and_then_is_not() {
        let mut b = MP3.to_vec();
        b.extend_from_slice(&[0x42; 2000]);
        assert_eq!(detect(&b[..300], false, false), Verdict::More);
        assert_eq!(mime(&b), None);
        let text = [MP3.as_slice(), b"<html>hello</html>"].concat();
        assert_eq!(mime(&text), None);
        // Noise is not audio, looked for inside a stream or not.
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let noise: Vec<u8> = (0..PREFIX)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(detect(&noise, false, true), Verdict::Done(None));
    }

    #[test]
    fn issue11_waits_only_as_long_as_it_must() {
        let f = mp3_frames(2);
        assert_eq!(detect(&f[..4], false, false), Verdict::More);
        assert_eq!(
            detect(&f[..421], false, false),
            Verdict::Done(Some(Detected::framed(FrameKind::Mpeg)))
        );
        assert_eq!(detect(b"ID3", false, false), Verdict::More);
        assert_eq!(detect(b"%PDF-1.7\n", false, false), Verdict::More);
        assert_eq!(
            detect(b"%PDF-1.7\n", true, false),
            Verdict::Done(Some(Detected::plain("application/pdf", "pdf")))
        );
        assert_eq!(detect(&[b'{'; 600], false, false), Verdict::Done(None));
        // A stream that starts mid-frame: found inside when scanning.
        let mid = &mp3_frames(4)[100..];
        assert_eq!(mime(mid), None);
        assert!(
            matches!(detect(mid, true, true), Verdict::Done(Some(d)) if d.mime == "audio/mpeg")
        );
    }

    #[test]
    fn issue11_signatures() {
        let cases: [(&[u8], &str); 8] = [
            (b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00", "audio/ogg"),
            (b"fLaC\x00\x00\x00\x22", "audio/x-flac"),
            (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/x-wav"),
            (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/m4a"),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "image/png"),
            (b"\xFF\xD8\xFF\xE0\x00\x10JFIF", "image/jpeg"),
            (b"PK\x03\x04\x14\x00\x00\x00", "application/zip"),
            (
                b"#EXTM3U\n#EXT-X-VERSION:3\n",
                "application/vnd.apple.mpegurl",
            ),
        ];
        for (b, want) in cases {
            assert_eq!(mime(b), Some(want), "{:?}", String::from_utf8_lossy(b));
        }
    }

    fn ts_packet(pid: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0x00];
        p.extend_from_slice(payload);
        p.resize(188, 0xFF);
        p
    }

    fn pmt(types: &[u8]) -> Vec<u8> {
        let mut streams = Vec::new();
        for (i, t) in types.iter().enumerate() {
            streams.extend([*t, 0xE1, i as u8, 0xF0, 0x00]);
        }
        let len = 9 + streams.len() + 4;
        let mut s = vec![
            0x02,
            0xB0 | (len >> 8) as u8,
            len as u8,
            0,
            1,
            0xC1,
            0,
            0,
            0xE1,
            0x00,
            0xF0,
            0x00,
        ];
        s.extend(streams);
        s.extend([0, 0, 0, 0]);
        s
    }

    #[test]
    fn issue11_transport_streams_audio_only_or_not() {
        let pat = [
            0x00, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, 1, 0xF0, 0x00, 0, 0, 0, 0,
        ];
        let ts = |types: &[u8]| {
            [
                ts_packet(0, &pat),
                ts_packet(0x1000, &pmt(types)),
                ts_packet(0x100, &[0; 10]),
            ]
            .concat()
        };
        assert_eq!(mime(&ts(&[0x0F])), Some("audio/mp2t"));
        assert_eq!(mime(&ts(&[0x1B, 0x0F])), Some("video/mp2t"));
        assert_eq!(mime(&ts(&[0x03, 0x15])), Some("audio/mp2t"));
        let no_map = [
            ts_packet(0x100, &[]),
            ts_packet(0x100, &[]),
            ts_packet(0x100, &[]),
        ]
        .concat();
        assert_eq!(detect(&no_map, false, false), Verdict::More);
        assert_eq!(mime(&no_map), Some("video/mp2t"));
    }
}
