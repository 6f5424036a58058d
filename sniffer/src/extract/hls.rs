//! HLS: media playlists read from their bodies, segments matched to them by URL, and a
//! plan to join each playlist's segments into the stream the listener heard.
//!
//! A response is a playlist by its type (`application/vnd.apple.mpegurl`, `audio/mpegurl`,
//! `application/x-mpegurl`) or by a `.m3u8` path; its body (at most [`MAX_PLAYLIST`]
//! bytes) is parsed for `#EXT-X-MEDIA-SEQUENCE`, the segment URIs and
//! `#EXT-X-DISCONTINUITY`. Live playlists are fetched again and again: every fetch adds
//! what it lists, by media sequence number. Segment URIs are resolved against the
//! playlist's URL (RFC 3986) and matched with the URLs of saved files, so segments fetched
//! over several connections, out of order or twice (used once) all find their place.
//!
//! The joining itself happens at the end of the capture (the extractor's `finish`), from
//! the saved segment files: [`Hls::plans`] says which files go into which joined file, in
//! media-sequence order, a new file at each discontinuity, with the missing sequence
//! numbers as holes. Memory is bounded: at most [`MAX_SEGMENTS`] segments and
//! [`MAX_SAVED`] saved files are remembered, and what is over is counted in a note.

use std::collections::{BTreeMap, HashMap};

use fluent_uri::{Iri, IriRef};

use crate::{records::Endpoints, wire::Timestamp};

/// Longest playlist body read.
pub const MAX_PLAYLIST: usize = 1 << 20;

/// Segments remembered over all playlists.
pub const MAX_SEGMENTS: usize = 20_000;

/// Saved files remembered as possible segments.
pub const MAX_SAVED: usize = 20_000;

/// Why a body is not a media playlist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlaylistError {
    /// It does not start with `#EXTM3U`.
    #[error("does not start with #EXTM3U")]
    NotAPlaylist,
}

/// Is a response with this type and request target an HLS playlist?
pub fn is_playlist(content_type: Option<&str>, uri: &[u8]) -> bool {
    if matches!(
        content_type,
        Some(
            "application/vnd.apple.mpegurl"
                | "audio/mpegurl"
                | "application/x-mpegurl"
                | "audio/x-mpegurl"
        )
    ) {
        return true;
    }
    let path_end = uri
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(uri.len());
    let path = &uri[..path_end];
    path.len() >= 5 && path[path.len() - 5..].eq_ignore_ascii_case(b".m3u8")
}

/// One segment a playlist lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its URI as written (relative to the playlist, usually).
    pub uri: String,
    /// An `#EXT-X-DISCONTINUITY` comes before it.
    pub discontinuity: bool,
}

/// What a playlist says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Playlist {
    /// `#EXT-X-MEDIA-SEQUENCE` (0 when absent): the first segment's number.
    pub media_sequence: u64,
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// A master playlist (it lists variants, not segments).
    pub master: bool,
    /// Segments need an initialisation section (`#EXT-X-MAP`: fragmented MP4).
    pub map: bool,
    /// Segments are byte ranges of one resource (`#EXT-X-BYTERANGE`).
    pub byte_ranges: bool,
}

/// Parse a playlist's text.
///
/// # Errors
/// It is not a playlist.
pub fn parse(text: &[u8]) -> Result<Playlist, PlaylistError> {
    let text = String::from_utf8_lossy(text);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if !lines.next().is_some_and(|l| l.starts_with("#EXTM3U")) {
        return Err(PlaylistError::NotAPlaylist);
    }
    let mut p = Playlist::default();
    let mut discontinuity = false;
    for line in lines {
        if let Some(tag) = line.strip_prefix('#') {
            if let Some(n) = tag.strip_prefix("EXT-X-MEDIA-SEQUENCE:") {
                p.media_sequence = n.trim().parse().unwrap_or(0);
            } else if tag.starts_with("EXT-X-DISCONTINUITY") && !tag.contains("SEQUENCE") {
                discontinuity = true;
            } else if tag.starts_with("EXT-X-STREAM-INF") {
                p.master = true;
            } else if tag.starts_with("EXT-X-MAP") {
                p.map = true;
            } else if tag.starts_with("EXT-X-BYTERANGE") {
                p.byte_ranges = true;
            }
            continue;
        }
        if p.master {
            continue;
        }
        p.segments.push(Segment {
            uri: line.to_owned(),
            discontinuity: std::mem::take(&mut discontinuity),
        });
    }
    Ok(p)
}

/// `reference` resolved against `base`, normalised (RFC 3986 §5.2, §6.2.2), so that equal
/// resources compare equal; `None` when either does not parse.
pub fn resolve(base: &str, reference: &str) -> Option<String> {
    let base = Iri::parse(base).ok()?;
    let r = IriRef::parse(reference).ok()?;
    Some(
        r.resolve_against(&base)
            .ok()?
            .normalize()
            .as_str()
            .to_owned(),
    )
}

/// A URL in the form [`resolve`] gives (the URL itself when it does not parse).
pub fn normalize(url: &str) -> String {
    Iri::parse(url).map_or_else(|_| url.to_owned(), |u| u.normalize().as_str().to_owned())
}

/// A saved file that may be a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Saved {
    pub file: String,
    pub complete: bool,
    pub ts: Timestamp,
    pub ext: String,
    pub mime: Option<String>,
}

/// One segment of a rendition.
#[derive(Clone, Debug)]
struct SegRef {
    url: String,
    discontinuity: bool,
}

/// Where a playlist was first fetched: what the joined file's index line says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Origin {
    pub stream: u64,
    pub number: u64,
    pub uri: Vec<u8>,
    pub endpoints: Endpoints,
    pub method: String,
}

/// One media playlist (by URL) and every segment its fetches listed.
#[derive(Debug)]
struct Rendition {
    url: String,
    origin: Origin,
    segments: BTreeMap<u64, SegRef>,
    notes: Vec<String>,
    over_limit: u64,
}

/// A joined file to write: the segment files in order (each has its leading ID3 tag
/// removed when written), and what the index line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct JoinPlan {
    pub playlist: String,
    pub origin: Origin,
    /// 0 for the first file of the rendition, then one more per discontinuity.
    pub part: usize,
    pub ts: Timestamp,
    pub ext: String,
    pub mime: Option<String>,
    pub files: Vec<String>,
    pub holes: Vec<(u64, u64)>,
    pub notes: Vec<String>,
}

/// Everything HLS the capture showed; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Hls {
    renditions: Vec<Rendition>,
    by_url: HashMap<String, usize>,
    tracked: usize,
    saved: HashMap<String, Saved>,
    saved_over: u64,
}

impl Hls {
    /// A playlist's body, fetched from `url` by `origin`. Returns notes for the
    /// playlist's own index line (what could not be tracked).
    pub(super) fn playlist(
        &mut self,
        url: &str,
        origin: Origin,
        body: &[u8],
        truncated: bool,
    ) -> Vec<String> {
        let mut said = Vec::new();
        let Ok(p) = parse(body) else { return said };
        if p.master || p.segments.is_empty() {
            return said;
        }
        let key = normalize(url);
        let i = *self.by_url.entry(key.clone()).or_insert_with(|| {
            self.renditions.push(Rendition {
                url: url.to_owned(),
                origin,
                segments: BTreeMap::new(),
                notes: Vec::new(),
                over_limit: 0,
            });
            self.renditions.len() - 1
        });
        let r = &mut self.renditions[i];
        let mut note = |n: String| {
            if !r.notes.contains(&n) {
                r.notes.push(n);
            }
        };
        if truncated {
            let n = format!(
                "a playlist body was longer than {MAX_PLAYLIST} bytes: only its start was read"
            );
            said.push(n.clone());
            note(n);
        }
        if p.map {
            note("the playlist's segments need an initialisation section (#EXT-X-MAP): they are joined without it".into());
        }
        if p.byte_ranges {
            note("the playlist lists byte ranges (#EXT-X-BYTERANGE): they are not joined".into());
            return said;
        }
        let before = r.over_limit;
        for (k, s) in p.segments.iter().enumerate() {
            let seq = p.media_sequence + k as u64;
            if r.segments.contains_key(&seq) {
                continue;
            }
            if self.tracked >= MAX_SEGMENTS {
                r.over_limit += 1;
                continue;
            }
            let Some(url) = resolve(&key, &s.uri) else {
                continue;
            };
            self.tracked += 1;
            r.segments.insert(
                seq,
                SegRef {
                    url,
                    discontinuity: s.discontinuity,
                },
            );
        }
        said.push(format!(
            "HLS playlist: {} segments listed, media sequence {} to {}",
            p.segments.len(),
            p.media_sequence,
            p.media_sequence + p.segments.len() as u64 - 1
        ));
        if r.over_limit > before {
            said.push(format!(
                "{} of them were not tracked for joining (over the limit of {MAX_SEGMENTS} segments)",
                r.over_limit - before
            ));
        }
        said
    }

    /// A file was saved from `url`: remember it, in case it is a segment. A complete copy
    /// replaces an incomplete one; otherwise the first is kept.
    pub(super) fn saved(&mut self, url: &str, s: Saved) {
        let key = normalize(url);
        let full = self.saved.len() >= MAX_SAVED;
        match self.saved.get_mut(&key) {
            Some(old) if !old.complete && s.complete => *old = s,
            Some(_) => {}
            None if full => self.saved_over += 1,
            None => {
                self.saved.insert(key, s);
            }
        }
    }

    /// What to join: per rendition with at least two saved segments, one plan per part
    /// (split at discontinuities), each with its segment files in media-sequence order.
    pub(super) fn plans(&self) -> Vec<JoinPlan> {
        let mut plans = Vec::new();
        for r in &self.renditions {
            let found = r
                .segments
                .values()
                .filter(|s| self.saved.get(&s.url).is_some_and(|f| f.complete))
                .count();
            if found < 2 {
                continue;
            }
            // Parts: runs of sequence numbers between discontinuities.
            let mut parts: Vec<Vec<(u64, &SegRef)>> = Vec::new();
            for (&seq, s) in &r.segments {
                match parts.last_mut() {
                    Some(p) if !s.discontinuity => p.push((seq, s)),
                    _ => parts.push(vec![(seq, s)]),
                }
            }
            let mut part_no = 0;
            for part in parts {
                if let Some(plan) = self.plan(r, &part, part_no) {
                    plans.push(plan);
                    part_no += 1;
                }
            }
        }
        plans
    }

    fn plan(&self, r: &Rendition, part: &[(u64, &SegRef)], part_no: usize) -> Option<JoinPlan> {
        let have = |s: &SegRef| self.saved.get(&s.url).filter(|f| f.complete);
        let first = part.iter().position(|(_, s)| have(s).is_some())?;
        let last = part.iter().rposition(|(_, s)| have(s).is_some())?;
        let mut files = Vec::new();
        let mut holes: Vec<(u64, u64)> = Vec::new();
        let mut hole = |a: u64, b: u64| match holes.last_mut() {
            Some(h) if h.1 + 1 == a => h.1 = b,
            _ => holes.push((a, b)),
        };
        let mut prev: Option<u64> = None;
        let mut head: Option<&Saved> = None;
        let mut incomplete_copies = 0;
        for &(seq, s) in &part[first..=last] {
            if let Some(p) = prev
                && seq > p + 1
            {
                hole(p + 1, seq - 1);
            }
            prev = Some(seq);
            match have(s) {
                Some(f) => {
                    head.get_or_insert(f);
                    files.push(f.file.clone());
                }
                None => {
                    incomplete_copies += usize::from(self.saved.contains_key(&s.url));
                    hole(seq, seq);
                }
            }
        }
        let head = head?;
        let mut notes = r.notes.clone();
        let (a, b) = (part[first].0, part[last].0);
        notes.push(format!(
            "joined from {} segments, media sequence {a} to {b}",
            files.len()
        ));
        if incomplete_copies > 0 {
            notes.push(format!(
                "{incomplete_copies} segments were saved incomplete and are left out as holes"
            ));
        }
        let before = first;
        let after = part.len() - 1 - last;
        if before + after > 0 {
            notes.push(format!(
                "the playlist listed {before} segments before and {after} after these that were never fetched"
            ));
        }
        if r.over_limit > 0 {
            notes.push(format!(
                "{} more segments listed were not tracked (over the limit of {MAX_SEGMENTS})",
                r.over_limit
            ));
        }
        if self.saved_over > 0 {
            notes.push(format!(
                "{} saved files were not remembered as possible segments (over the limit of {MAX_SAVED})",
                self.saved_over
            ));
        }
        if part_no > 0 {
            notes.push("starts after an #EXT-X-DISCONTINUITY".into());
        }
        Some(JoinPlan {
            playlist: r.url.clone(),
            origin: r.origin.clone(),
            part: part_no,
            ts: head.ts,
            ext: head.ext.clone(),
            mime: head.mime.clone(),
            files,
            holes,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n\
        #EXT-X-MEDIA-SEQUENCE:41\n#EXTINF:6.0,\nseg41.aac\n#EXTINF:6.0,\nseg42.aac\n\
        #EXT-X-DISCONTINUITY\n#EXTINF:6.0,\n/other/seg43.aac?x=1\n";

    #[test]
    fn issue11_media_playlist_parsed() {
        let p = parse(LIVE.as_bytes()).unwrap();
        assert_eq!(p.media_sequence, 41);
        let uris: Vec<_> = p.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["seg41.aac", "seg42.aac", "/other/seg43.aac?x=1"]);
        assert_eq!(
            p.segments
                .iter()
                .map(|s| s.discontinuity)
                .collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(!p.master);
        let master =
            parse(b"\xef\xbb\xbf#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n").unwrap();
        assert!(master.master && master.segments.is_empty());
        assert_eq!(parse(b"<html>"), Err(PlaylistError::NotAPlaylist));
        assert_eq!(
            parse(b"#EXTM3U\r\n#EXTINF:1,\r\na.ts\r\n")
                .unwrap()
                .segments[0]
                .uri,
            "a.ts"
        );
    }

    #[test]
    fn issue11_segment_urls_resolved_against_the_playlist() {
        let base = "http://Example.org:80/live/radio.m3u8?t=1";
        assert_eq!(
            resolve(base, "seg1.aac").as_deref(),
            Some("http://example.org/live/seg1.aac")
        );
        assert_eq!(
            resolve(base, "../a/./b.ts").as_deref(),
            Some("http://example.org/a/b.ts")
        );
        assert_eq!(
            resolve(base, "http://cdn.example.org/x.aac").as_deref(),
            Some("http://cdn.example.org/x.aac")
        );
        assert_eq!(
            normalize("http://example.org/live/%73eg1.aac"),
            "http://example.org/live/seg1.aac"
        );
        assert!(is_playlist(None, b"/live/radio.M3U8?x"));
        assert!(is_playlist(Some("application/vnd.apple.mpegurl"), b"/x"));
        assert!(!is_playlist(Some("audio/aac"), b"/x.aac"));
    }

    fn origin() -> Origin {
        Origin {
            stream: 0,
            number: 0,
            uri: b"/live/radio.m3u8".to_vec(),
            endpoints: Endpoints::new(
                "10.0.0.1:5000".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
            ),
            method: "GET".into(),
        }
    }

    fn saved(file: &str) -> Saved {
        Saved {
            file: file.into(),
            complete: true,
            ts: Timestamp(0),
            ext: "aac".into(),
            mime: Some("audio/aac".into()),
        }
    }

    #[test]
    fn issue11_join_plans_in_sequence_order_with_holes_and_parts() {
        let mut h = Hls::default();
        let base = "http://h/live/radio.m3u8";
        // Two fetches of a sliding window; segments saved out of order, one twice, one
        // never.
        let first = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:1,\ns1.aac\n#EXTINF:1,\ns2.aac\n#EXTINF:1,\ns3.aac\n";
        let second = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:1,\ns3.aac\n#EXTINF:1,\ns4.aac\n#EXTINF:1,\ns5.aac\n#EXT-X-DISCONTINUITY\n#EXTINF:1,\ns6.aac\n#EXTINF:1,\ns7.aac\n";
        h.playlist(base, origin(), first.as_bytes(), false);
        h.saved("http://h/live/s4.aac", saved("f4"));
        h.saved("http://h/live/s1.aac", saved("f1"));
        h.saved("http://h/live/s2.aac", saved("f2"));
        h.saved("http://h/live/s2.aac", saved("f2-again"));
        h.playlist(base, origin(), second.as_bytes(), false);
        h.saved("http://h/live/s6.aac", saved("f6"));
        h.saved("http://h/live/s7.aac", saved("f7"));
        let plans = h.plans();
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].files, ["f1", "f2", "f4"]);
        assert_eq!(plans[0].holes, [(3, 3)]);
        assert_eq!(plans[0].part, 0);
        assert_eq!(plans[1].files, ["f6", "f7"]);
        assert!(plans[1].holes.is_empty());
        assert_eq!(plans[1].part, 1);
        assert!(
            plans[0].notes.iter().any(|n| n.contains("1 after")),
            "{:?}",
            plans[0].notes
        );
    }

    #[test]
    fn issue11_a_playlist_of_100000_segments_stays_bounded() {
        let mut text = String::from("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n");
        for i in 0..100_000 {
            text.push_str(&format!("#EXTINF:1,\ns{i}.ts\n"));
        }
        let mut h = Hls::default();
        h.playlist("http://h/a.m3u8", origin(), text.as_bytes(), false);
        assert_eq!(h.tracked, MAX_SEGMENTS);
        assert_eq!(h.renditions[0].over_limit, 100_000 - MAX_SEGMENTS as u64);
        h.saved("http://h/s0.ts", saved("a"));
        h.saved("http://h/s5.ts", saved("b"));
        let plans = h.plans();
        assert_eq!(plans[0].holes, [(1, 4)]);
        assert!(plans[0].notes.iter().any(|n| n.contains("not tracked")));
        for i in 0..(MAX_SAVED + 10) {
            h.saved(&format!("http://h/other{i}"), saved("x"));
        }
        assert_eq!(h.saved.len(), MAX_SAVED);
    }
}
