//! A radio stream cut into tracks: one file per title, cut at audio frame boundaries.
//!
//! [`Tracks`] takes what [`crate::http::icy::Demuxer`] hands out (audio, lost audio,
//! titles, notes) and writes files through a [`TrackOut`]:
//!
//! - the audio before the first title belongs to the first title: it is held (at most
//!   [`PRELUDE`] bytes) until the first block names the track; the prelude also decides
//!   the type ([`super::detect`], looking inside the stream) and so the extension;
//! - a title change cuts at the frame boundary nearest to it. Only the current, unfinished
//!   frame is ever held back (so either neighbouring boundary can be chosen); everything
//!   before it is written at once, so the file of a live stream grows as it plays;
//! - a title that changes again within [`MIN_TRACK`] bytes is not split off (a title every
//!   100 ms would make a file per 100 ms): it is noted in the current track instead;
//! - the first and the last track are incomplete (picked up mid-song, cut off);
//! - concatenated in order, the files are exactly the audio bytes placed in the stream
//!   (lost audio as zeros, declared as gaps).
//!
//! Memory: the prelude, one frame (or, while looking for frames, two), and bounded notes.

use super::{
    detect::{self, Detected, Verdict},
    frames::{self, FrameKind, Header, Parse},
};
use crate::{
    http::icy::{Event, Metadata, Note},
    wire::Timestamp,
};

/// A title change this few bytes after the last one is noted, not split off.
pub const MIN_TRACK: u64 = 16 * 1024;

/// Audio held before the first title; past it the first file is started untitled.
pub const PRELUDE: usize = 64 * 1024;

/// Most bytes held while looking for frames: a frame and the next header.
const MAX_HOLD: usize = frames::MAX_FRAME + frames::HEADER_MAX;

/// Notes kept per track; more are counted.
const MAX_NOTES: usize = 16;

/// Gap ranges listed per track; more are counted in a note.
const MAX_GAPS: usize = 256;

/// A finished track, for its index line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TrackDone {
    /// Number in the stream from 1; `None` for a stream kept whole.
    pub number: Option<u64>,
    pub title: Option<String>,
    pub url: Option<String>,
    /// Offset of its first byte in the stream's audio.
    pub offset: u64,
    pub len: u64,
    pub complete: bool,
    pub gaps: Vec<(u64, Option<u64>)>,
    pub notes: Vec<String>,
    /// When the track started.
    pub ts: Timestamp,
}

/// Where tracks go: files created, written and closed by the extractor (or, in tests, in
/// memory).
pub(super) trait TrackOut {
    /// An open track file.
    type File;
    /// Is a stream of this detected type wanted at all?
    fn wanted(&mut self, detected: Option<&Detected>) -> bool;
    /// Create the file for a track; `None` when it could not be (its bytes are dropped,
    /// the failure counted by the output).
    fn create(
        &mut self,
        number: Option<u64>,
        title: Option<&str>,
        detected: Option<&Detected>,
    ) -> Option<Self::File>;
    /// Append bytes.
    fn write(&mut self, file: &mut Self::File, bytes: &[u8]);
    /// Append `len` zero bytes (lost audio).
    fn pad(&mut self, file: &mut Self::File, len: u64);
    /// The track is over: close its file and index it.
    fn close(&mut self, file: Self::File, done: TrackDone);
}

/// Frame sync of the audio.
#[derive(Clone, Copy, Debug)]
enum Sync {
    /// The type has no frames to cut at (Ogg, FLAC…): cut exactly at the title.
    Off,
    /// Looking for two chained frames (of `kind`, when known).
    Searching,
    /// Frames follow each other; the first header seen.
    Locked(Header),
}

/// One track being written.
struct Track<F> {
    file: Option<F>,
    /// Its file was created (or creating it failed).
    created: bool,
    number: Option<u64>,
    title: Option<String>,
    url: Option<String>,
    /// Started before any title came.
    untitled: bool,
    offset: u64,
    len: u64,
    gaps: Vec<(u64, Option<u64>)>,
    more_gaps: u64,
    notes: Vec<String>,
    more_notes: u64,
    first: bool,
    /// Bytes around it could not be placed.
    lost: bool,
    ts: Timestamp,
}

impl<F> Track<F> {
    fn note(&mut self, n: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(n);
        } else {
            self.more_notes += 1;
        }
    }
}

/// A cut waiting for the end of the current frame.
struct Next {
    at: u64,
    title: Option<String>,
    url: Option<String>,
    notes: Vec<String>,
}

enum Stage {
    Prelude,
    Running,
    /// Not wanted (its detected type does not match): everything is dropped.
    Dropped,
}

/// Cuts one radio stream into tracks; see the module docs.
pub(super) struct Tracks<F> {
    split: bool,
    declared: Option<FrameKind>,
    detected: Option<Detected>,
    kind: Option<FrameKind>,
    stage: Stage,
    prelude: Vec<u8>,
    /// Notes that came before the first track existed.
    early_notes: Vec<String>,
    current: Option<Track<F>>,
    next: Option<Next>,
    /// Audio offset of the next byte (placed audio, lost audio included).
    pos: u64,
    held: Vec<u8>,
    held_start: u64,
    sync: Sync,
    tracks: u64,
    /// The last title any block carried: a block repeating it changes nothing.
    last_title: Option<String>,
    now: Timestamp,
}

impl<F> Tracks<F> {
    /// A stream whose declared type suggests `declared` frames; `split`: one file per
    /// title (else one file for the stream).
    pub(super) fn new(split: bool, declared: Option<FrameKind>, now: Timestamp) -> Self {
        Self {
            split,
            declared,
            detected: None,
            kind: None,
            stage: Stage::Prelude,
            prelude: Vec::new(),
            early_notes: Vec::new(),
            current: None,
            next: None,
            pos: 0,
            held: Vec::new(),
            held_start: 0,
            sync: Sync::Searching,
            tracks: 0,
            last_title: None,
            now,
        }
    }

    /// Not wanted after all: nothing more is written.
    pub(super) fn dropped(&self) -> bool {
        matches!(self.stage, Stage::Dropped)
    }

    /// The time of what comes next.
    pub(super) fn set_time(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// One event of the demuxer.
    pub(super) fn event<O: TrackOut<File = F>>(&mut self, out: &mut O, e: Event<'_>) {
        match e {
            Event::Audio(b) => self.audio(out, b),
            Event::AudioGap(n) => self.gap(out, n),
            Event::Meta(m) => self.meta(out, m),
            Event::Note(n) => self.note(out, &n),
        }
    }

    fn audio<O: TrackOut<File = F>>(&mut self, out: &mut O, b: &[u8]) {
        match self.stage {
            Stage::Dropped => {}
            Stage::Prelude => {
                self.prelude.extend_from_slice(b);
                self.pos += b.len() as u64;
                if self.prelude.len() >= PRELUDE {
                    self.start(out, None);
                }
            }
            Stage::Running => {
                self.held.extend_from_slice(b);
                self.pos += b.len() as u64;
                self.advance(out);
            }
        }
    }

    /// Decide the type from the prelude and open the first track.
    fn start<O: TrackOut<File = F>>(&mut self, out: &mut O, meta: Option<Metadata>) {
        let detected = match detect::detect(&self.prelude, true, true) {
            Verdict::Done(d) => d,
            Verdict::More => None,
        };
        self.detected = detected;
        self.kind = detected.and_then(|d| d.frames).or(self.declared);
        self.sync = match (detected, self.kind) {
            (_, Some(_)) | (None, None) => Sync::Searching,
            (Some(_), None) => Sync::Off,
        };
        if !out.wanted(detected.as_ref()) {
            self.stage = Stage::Dropped;
            self.prelude = Vec::new();
            return;
        }
        self.stage = Stage::Running;
        let (title, url) = meta.map_or((None, None), |m| (m.title, m.url));
        let untitled = title.is_none();
        let mut t = self.open(0, title, url);
        t.untitled = untitled;
        t.notes.append(&mut self.early_notes);
        self.current = Some(t);
        self.held = std::mem::take(&mut self.prelude);
        self.held_start = 0;
        self.advance(out);
    }

    /// A new track from audio offset `offset`. Its file is created with its first byte
    /// (a title that comes as the stream ends makes no empty file).
    fn open(&self, offset: u64, title: Option<String>, url: Option<String>) -> Track<F> {
        Track {
            file: None,
            created: false,
            number: None,
            title,
            url,
            untitled: false,
            offset,
            len: 0,
            gaps: Vec::new(),
            more_gaps: 0,
            notes: Vec::new(),
            more_notes: 0,
            first: false,
            lost: false,
            ts: self.now,
        }
    }

    /// Create the current track's file if it has none yet.
    fn create<O: TrackOut<File = F>>(&mut self, out: &mut O) {
        let Some(t) = self.current.as_mut() else {
            return;
        };
        if !t.created {
            t.created = true;
            self.tracks += 1;
            t.first = self.tracks == 1;
            t.number = self.split.then_some(self.tracks);
            t.file = out.create(t.number, t.title.as_deref(), self.detected.as_ref());
        }
    }

    /// Write what is held up to the current frame (or, without frames, everything).
    fn advance<O: TrackOut<File = F>>(&mut self, out: &mut O) {
        loop {
            match self.sync {
                Sync::Off => {
                    self.commit(out, self.held.len());
                    return;
                }
                Sync::Locked(first) => match frames::parse(&self.held) {
                    Parse::Valid(h) if first.same_stream(&h) => {
                        if self.held.len() < h.len {
                            return;
                        }
                        self.commit(out, h.len);
                    }
                    Parse::Short => return,
                    Parse::Valid(_) | Parse::Invalid => self.sync = Sync::Searching,
                },
                Sync::Searching => match frames::find_chain(&self.held, 0, 2, self.kind) {
                    Ok((p, h)) => {
                        self.commit(out, p);
                        self.kind = Some(h.kind);
                        self.sync = Sync::Locked(h);
                    }
                    Err(short) => {
                        let keep_from = short.max(self.held.len().saturating_sub(MAX_HOLD));
                        self.commit(out, keep_from);
                        return;
                    }
                },
            }
        }
    }

    /// Write the first `n` held bytes to the current track (cutting on the way if a cut
    /// waits inside them).
    fn commit<O: TrackOut<File = F>>(&mut self, out: &mut O, n: usize) {
        if n == 0 {
            return;
        }
        let end = self.held_start + n as u64;
        let mut from = 0;
        if let Some(next) = &self.next
            && next.at <= end
        {
            let k = (next.at - self.held_start) as usize;
            self.write(out, 0, k);
            self.cut(out, next_at(self.next.as_ref()));
            from = k;
        }
        self.write(out, from, n);
        self.held.drain(..n);
        self.held_start = end;
    }

    fn write<O: TrackOut<File = F>>(&mut self, out: &mut O, from: usize, to: usize) {
        if from == to {
            return;
        }
        self.create(out);
        if let Some(t) = &mut self.current {
            if let Some(f) = &mut t.file {
                out.write(f, &self.held[from..to]);
            }
            t.len += (to - from) as u64;
        }
    }

    /// Close the current track and start the next one at `at` (the waiting cut's title,
    /// if there is one).
    fn cut<O: TrackOut<File = F>>(&mut self, out: &mut O, at: u64) {
        let next = self.next.take().unwrap_or(Next {
            at,
            title: None,
            url: None,
            notes: Vec::new(),
        });
        if let Some(t) = self.current.take() {
            self.close(out, t, false);
        }
        let mut t = self.open(at, next.title, next.url);
        for n in next.notes {
            t.note(n);
        }
        self.current = Some(t);
    }

    fn close<O: TrackOut<File = F>>(&mut self, out: &mut O, mut t: Track<F>, last: bool) {
        if t.first {
            t.notes.insert(
                0,
                "the first track: the stream was picked up mid-song".into(),
            );
        }
        if last {
            t.notes
                .push("the last track: the stream was cut off".into());
        }
        if t.more_notes > 0 {
            t.notes
                .push(format!("{} more notes not listed", t.more_notes));
        }
        if t.more_gaps > 0 {
            t.notes
                .push(format!("{} more gaps not listed", t.more_gaps));
        }
        let complete = !t.first && !last && t.gaps.is_empty() && t.more_gaps == 0 && !t.lost;
        let done = TrackDone {
            number: t.number,
            title: t.title,
            url: t.url,
            offset: t.offset,
            len: t.len,
            complete,
            gaps: t.gaps,
            notes: t.notes,
            ts: t.ts,
        };
        if let Some(f) = t.file {
            out.close(f, done);
        }
    }

    fn meta<O: TrackOut<File = F>>(&mut self, out: &mut O, m: Metadata) {
        match self.stage {
            Stage::Dropped => return,
            Stage::Prelude => {
                if m.title.is_some() {
                    self.last_title.clone_from(&m.title);
                    self.start(out, Some(m));
                }
                return;
            }
            Stage::Running => {}
        }
        let Some(title) = m.title else { return };
        if self.last_title.as_ref() == Some(&title) {
            // SHOUTcast repeats the title in every block.
            return;
        }
        self.last_title = Some(title.clone());
        let pos = self.pos;
        let Some(cur) = &mut self.current else { return };
        if cur.untitled {
            // The first title names the track started before it.
            cur.untitled = false;
            cur.title = Some(title);
            cur.url = m.url;
            return;
        }
        let note = format!("title {title:?} from audio offset {pos} (not split off)");
        if !self.split {
            cur.note(note);
            return;
        }
        if let Some(next) = &mut self.next {
            next.notes.push(format!(
                "title {title:?} came before this track's first frame ended"
            ));
            next.title = Some(title);
            next.url = m.url;
            return;
        }
        if cur.len + self.held.len() as u64 <= MIN_TRACK {
            cur.note(format!(
                "{note}: it came within {MIN_TRACK} bytes of the last title change"
            ));
            return;
        }
        let next = Next {
            at: pos,
            title: Some(title),
            url: m.url,
            notes: Vec::new(),
        };
        match self.sync {
            Sync::Locked(_) => {
                let before = pos - self.held_start;
                match frames::parse(&self.held) {
                    Parse::Valid(h) if self.held_start + h.len as u64 - pos < before => {
                        // The frame's end is nearer: cut there, once it is written.
                        self.next = Some(Next {
                            at: self.held_start + h.len as u64,
                            ..next
                        });
                    }
                    _ => {
                        self.next = Some(next);
                        self.cut(out, self.held_start);
                    }
                }
            }
            Sync::Off | Sync::Searching => {
                self.commit(out, self.held.len());
                self.next = Some(next);
                self.cut(out, pos);
            }
        }
    }

    fn gap<O: TrackOut<File = F>>(&mut self, out: &mut O, len: u64) {
        match self.stage {
            Stage::Dropped => return,
            Stage::Prelude => self.start(out, None),
            Stage::Running => {}
        }
        if self.dropped() {
            return;
        }
        self.commit(out, self.held.len());
        if self.next.is_some() {
            // The frame the cut waited for ran into the gap: cut here.
            self.cut(out, self.pos);
        }
        self.create(out);
        if let Some(t) = &mut self.current {
            if let Some(f) = &mut t.file {
                out.pad(f, len);
            }
            if t.gaps.len() < MAX_GAPS {
                t.gaps.push((t.len, Some(t.len + len)));
            } else {
                t.more_gaps += 1;
            }
            t.len += len;
        }
        self.pos += len;
        self.held_start = self.pos;
        if !matches!(self.sync, Sync::Off) {
            self.sync = Sync::Searching;
        }
    }

    fn note<O: TrackOut<File = F>>(&mut self, out: &mut O, n: &Note) {
        let lost = matches!(
            n,
            Note::SyncLost { .. } | Note::Resynced { .. } | Note::EndedInside { .. }
        );
        if lost && matches!(self.stage, Stage::Running) {
            // The audio is not continuous across the loss: write what is held.
            self.commit(out, self.held.len());
            if !matches!(self.sync, Sync::Off) {
                self.sync = Sync::Searching;
            }
        }
        match &mut self.current {
            Some(t) => {
                t.lost |= lost;
                t.note(n.to_string());
            }
            None if self.early_notes.len() < MAX_NOTES => self.early_notes.push(n.to_string()),
            None => {}
        }
    }

    /// The stream is over: write what is held and close the last track, with `notes`.
    pub(super) fn finish<O: TrackOut<File = F>>(&mut self, out: &mut O, notes: &[String]) {
        if matches!(self.stage, Stage::Prelude) {
            if self.prelude.is_empty() && self.early_notes.is_empty() {
                return;
            }
            self.start(out, None);
        }
        if self.dropped() {
            return;
        }
        let held = self.held.len();
        self.commit(out, held);
        if let (Some(next), Some(t)) = (self.next.take(), &mut self.current) {
            t.note(format!(
                "title {:?} came in the last frame of the stream",
                next.title.unwrap_or_default()
            ));
        }
        if let Some(mut t) = self.current.take() {
            for n in notes {
                t.note(n.clone());
            }
            self.close(out, t, true);
        }
    }
}

fn next_at(next: Option<&Next>) -> u64 {
    next.map_or(0, |n| n.at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::icy::Demuxer;

    /// Tracks kept in memory.
    #[derive(Default)]
    struct Mem {
        files: Vec<(Option<u64>, Option<String>, Vec<u8>)>,
        done: Vec<TrackDone>,
        want: bool,
    }

    impl TrackOut for Mem {
        type File = usize;
        fn wanted(&mut self, _d: Option<&Detected>) -> bool {
            self.want
        }
        fn create(
            &mut self,
            n: Option<u64>,
            t: Option<&str>,
            _d: Option<&Detected>,
        ) -> Option<usize> {
            self.files.push((n, t.map(str::to_owned), Vec::new()));
            Some(self.files.len() - 1)
        }
        fn write(&mut self, f: &mut usize, b: &[u8]) {
            self.files[*f].2.extend_from_slice(b);
        }
        fn pad(&mut self, f: &mut usize, len: u64) {
            self.files[*f]
                .2
                .extend(std::iter::repeat_n(0, len as usize));
        }
        fn close(&mut self, f: usize, done: TrackDone) {
            assert_eq!(done.len, self.files[f].2.len() as u64);
            self.done.push(done);
        }
    }

    /// MPEG-1 Layer III frames of varying bitrate: their starts and the bytes.
    fn mp3(n: usize, seed: u64) -> (Vec<usize>, Vec<u8>) {
        let mut x = seed | 1;
        let mut starts = Vec::new();
        let mut v = Vec::new();
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bitrate index 5..=14, padding either way.
            let idx = 5 + (x % 10) as u8;
            let pad = (x >> 8) as u8 & 1;
            let h = [0xFF, 0xFB, idx << 4 | pad << 1, 0x64];
            let Parse::Valid(hd) = frames::parse(&h) else {
                panic!()
            };
            starts.push(v.len());
            v.extend_from_slice(&h);
            for j in 4..hd.len {
                // Frame bodies never hold 0xFF: no false syncs inside.
                v.push(((x >> (j % 40)) as u8) & 0x7F);
            }
        }
        (starts, v)
    }

    fn block(title: &str) -> Vec<u8> {
        let text = format!("StreamTitle='{title}';");
        let l = text.len().div_ceil(16);
        let mut b = vec![l as u8];
        b.extend_from_slice(text.as_bytes());
        b.resize(1 + 16 * l, 0);
        b
    }

    /// An ICY body: `audio` with a block every `metaint` bytes, titled by `title_at(i)`.
    fn icy(audio: &[u8], metaint: usize, title_at: impl Fn(usize) -> Option<String>) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, p) in audio.chunks(metaint).enumerate() {
            body.extend_from_slice(p);
            if p.len() == metaint {
                match title_at(i) {
                    Some(t) => body.extend(block(&t)),
                    None => body.push(0),
                }
            }
        }
        body
    }

    fn run(body: &[u8], metaint: u64, split: bool, piece: usize) -> Mem {
        let mut mem = Mem {
            want: true,
            ..Mem::default()
        };
        let mut d = Demuxer::new(metaint);
        let mut t = Tracks::new(split, Some(FrameKind::Mpeg), Timestamp(0));
        for p in body.chunks(piece) {
            d.feed(p, &mut |e| t.event(&mut mem, e));
        }
        d.finish(&mut |e| t.event(&mut mem, e));
        t.finish(&mut mem, &[]);
        mem
    }

    /// The model: the cut for a title that applies from audio offset `at` is the frame
    /// start nearest to it (the earlier one on a tie).
    fn nearest(starts: &[usize], at: usize) -> usize {
        let after = starts.iter().position(|&s| s >= at).unwrap_or(starts.len());
        if after == 0 {
            return starts[0];
        }
        let before = starts[after - 1];
        match starts.get(after) {
            Some(&next) if next - at < at - before => next,
            _ => before,
        }
    }

    #[test]
    fn issue11_tracks_cut_at_the_nearest_frame_and_concatenate_to_the_audio() {
        let (starts, audio) = mp3(2000, 7);
        let metaint = 16000;
        // Titles change every 7 blocks: A at block 0 (names the first track), B at 7, …
        let title_at = |i: usize| Some(format!("Artist - Song {}", i / 7));
        let body = icy(&audio, metaint, title_at);
        for piece in [1448, 1, 333, 100_000] {
            let mem = run(&body, metaint as u64, true, piece);
            let all: Vec<u8> = mem.files.iter().flat_map(|f| f.2.clone()).collect();
            assert!(all == audio, "piece {piece}: concatenation differs");
            let changes: Vec<usize> = (1..audio.len() / metaint)
                .filter(|i| i % 7 == 0)
                .map(|i| (i + 1) * metaint)
                .collect();
            assert_eq!(mem.done.len(), changes.len() + 1, "piece {piece}");
            for (k, &c) in changes.iter().enumerate() {
                let cut = mem.done[k + 1].offset as usize;
                assert_eq!(cut, nearest(&starts, c), "piece {piece}, change {k} at {c}");
                assert_eq!(
                    mem.done[k + 1].title.as_deref(),
                    Some(format!("Artist - Song {}", k + 1).as_str())
                );
                assert!(mem.done[k + 1].complete || k + 2 == mem.done.len());
            }
            assert_eq!(mem.done[0].title.as_deref(), Some("Artist - Song 0"));
            assert!(!mem.done[0].complete);
            assert!(!mem.done.last().unwrap().complete);
            assert_eq!(mem.done[1].number, Some(2));
        }
    }

    #[test]
    fn issue11_random_title_positions_against_the_model() {
        for seed in 1..40u64 {
            let (starts, audio) = mp3(300, seed);
            let metaint = 500 + (seed as usize * 37) % 3000;
            let mut x = seed;
            let mut changes = vec![0usize];
            let titles: Vec<Option<String>> = (0..audio.len() / metaint)
                .map(|i| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let change = i == 0 || (x >> 60) < 3;
                    if change {
                        changes.push(i);
                    }
                    Some(format!("t{}", changes.len()))
                })
                .collect();
            let body = icy(&audio, metaint, |i| titles[i].clone());
            let mem = run(&body, metaint as u64, true, 1 + seed as usize * 97);
            let all: Vec<u8> = mem.files.iter().flat_map(|f| f.2.clone()).collect();
            assert!(all == audio, "seed {seed}");
            // Every cut is at a frame start, and no track but the last is shorter than
            // MIN_TRACK less a frame.
            for d in &mem.done[1..] {
                assert!(
                    starts.contains(&(d.offset as usize)),
                    "seed {seed}: cut at {} metaint {metaint} starts near {:?} done {:?}",
                    d.offset,
                    starts
                        .iter()
                        .filter(|&&s| s.abs_diff(d.offset as usize) < 3000)
                        .collect::<Vec<_>>(),
                    mem.done
                        .iter()
                        .map(|d| (d.offset, d.len, d.title.clone()))
                        .collect::<Vec<_>>()
                );
            }
            for d in &mem.done[..mem.done.len() - 1] {
                assert!(d.len + 2 * 1441 > MIN_TRACK, "seed {seed}: {} bytes", d.len);
            }
        }
    }

    #[test]
    fn issue11_a_title_every_100_ms_is_not_a_file_every_100_ms() {
        let (_, audio) = mp3(3000, 3);
        // 1600 bytes between blocks (100 ms at 128 kbit/s), a new title in every block.
        let body = icy(&audio, 1600, |i| Some(format!("t{i}")));
        let mem = run(&body, 1600, true, 1448);
        let all: Vec<u8> = mem.files.iter().flat_map(|f| f.2.clone()).collect();
        assert!(all == audio);
        let most = audio.len() as u64 / MIN_TRACK + 1;
        assert!(mem.done.len() as u64 <= most, "{} files", mem.done.len());
        assert!(mem.done.iter().all(|d| d.notes.len() <= MAX_NOTES + 3));
        assert!(
            mem.done[0]
                .notes
                .iter()
                .any(|n| n.contains("not split off")),
            "{:?}",
            mem.done[0].notes
        );
    }

    #[test]
    fn issue11_no_split_keeps_one_file_and_notes_the_titles() {
        let (_, audio) = mp3(1000, 5);
        let body = icy(&audio, 16000, |i| Some(format!("Song {}", i / 5)));
        let mem = run(&body, 16000, false, 1448);
        assert_eq!(mem.files.len(), 1);
        assert!(mem.files[0].2 == audio);
        assert_eq!(mem.done[0].number, None);
        assert_eq!(mem.done[0].title.as_deref(), Some("Song 0"));
        assert!(mem.done[0].notes.iter().any(|n| n.contains("Song 1")));
    }

    #[test]
    fn issue11_gaps_are_padded_and_declared() {
        let (_, audio) = mp3(1000, 9);
        let body = icy(&audio, 16000, |i| Some(format!("Song {}", i / 10)));
        let mut mem = Mem {
            want: true,
            ..Mem::default()
        };
        let mut d = Demuxer::new(16000);
        let mut t = Tracks::new(true, Some(FrameKind::Mpeg), Timestamp(0));
        // Lose 3000 bytes of audio in the third period.
        let at = 2 * 16000 + 2 * 33 + 5000;
        d.feed(&body[..at], &mut |e| t.event(&mut mem, e));
        d.gap(3000, &mut |e| t.event(&mut mem, e));
        d.feed(&body[at + 3000..], &mut |e| t.event(&mut mem, e));
        t.finish(&mut mem, &["session ended".into()]);
        let all: Vec<u8> = mem.files.iter().flat_map(|f| f.2.clone()).collect();
        let mut want = audio.clone();
        want[2 * 16000 + 5000..2 * 16000 + 8000].fill(0);
        assert!(all == want);
        assert_eq!(mem.done[0].gaps, [(37_000, Some(40_000))]);
        assert!(!mem.done[0].complete);
        assert!(
            mem.done
                .last()
                .unwrap()
                .notes
                .iter()
                .any(|n| n == "session ended")
        );
    }

    #[test]
    fn issue11_not_wanted_after_detection_writes_nothing() {
        let (_, audio) = mp3(100, 1);
        let body = icy(&audio, 8000, |_| Some("x".into()));
        let mut mem = Mem::default();
        let mut d = Demuxer::new(8000);
        let mut t = Tracks::new(true, None, Timestamp(0));
        d.feed(&body, &mut |e| t.event(&mut mem, e));
        t.finish(&mut mem, &[]);
        assert!(mem.files.is_empty() && t.dropped());
    }
}
