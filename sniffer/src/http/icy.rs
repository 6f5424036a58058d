//! ICY metadata (SHOUTcast, Icecast): removing the blocks a station inserts into its
//! audio, and reading their titles.
//!
//! A response with `icy-metaint: N` (asked for with `Icy-MetaData: 1`) carries, after
//! every N bytes of audio, one length byte L and then 16·L bytes of text such as
//! `StreamTitle='Artist - Title';StreamUrl='…';`, padded with NULs. [`Demuxer`] takes the
//! body (after de-chunking) in pieces of any size, and gaps, and hands out the audio bytes
//! exactly as the station sent them between the blocks, plus each block's metadata. Its
//! memory is constant: at most one block (4080 bytes) is held.
//!
//! A gap inside the audio keeps the place (its length is known). A gap that takes a
//! length byte loses it: the demuxer then looks for the next block that carries a
//! `StreamTitle='`, at a position the lost blocks could have led to (a multiple of the
//! period, give or take 16-byte block lengths), and resumes there; the bytes in between
//! could not be placed and are counted, never written as audio.

use std::fmt;

/// A larger `icy-metaint` is refused (real stations use 8 KiB to 64 KiB).
pub const MAX_METAINT: u64 = 1 << 20;

/// `StreamTitle='`: what a block found after a loss must start with.
const TITLE_KEY: &[u8] = b"StreamTitle='";

/// Most consecutive lost blocks the resynchronisation check counts through; after a
/// longer loss any candidate position is accepted.
const MAX_LOST_BLOCKS: u64 = 4096;

/// Why an `icy-metaint` value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaintError {
    /// Not a decimal number.
    #[error("icy-metaint {0:?} is not a number")]
    NotANumber(String),
    /// Zero.
    #[error("icy-metaint 0 cannot be")]
    Zero,
    /// Over [`MAX_METAINT`].
    #[error("icy-metaint {0} is over the limit of {MAX_METAINT}")]
    TooLarge(u64),
}

/// The metadata interval of an `icy-metaint` header value.
///
/// # Errors
/// Not a number, zero, or absurdly large.
pub fn parse_metaint(value: &[u8]) -> Result<u64, MetaintError> {
    let text = String::from_utf8_lossy(value.trim_ascii());
    let n: u64 = text
        .parse()
        .map_err(|_| MetaintError::NotANumber(text.chars().take(40).collect()))?;
    match n {
        0 => Err(MetaintError::Zero),
        n if n > MAX_METAINT => Err(MetaintError::TooLarge(n)),
        n => Ok(n),
    }
}

/// What one metadata block said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `StreamTitle`, if the block has one.
    pub title: Option<String>,
    /// `StreamUrl`, if the block has one.
    pub url: Option<String>,
}

impl Metadata {
    /// Parse a block's text: UTF-8, or Latin-1 when it is not valid UTF-8.
    pub fn parse(block: &[u8]) -> Self {
        let end = block.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let block = &block[..end];
        let text = match std::str::from_utf8(block) {
            Ok(s) => s.to_owned(),
            Err(_) => block.iter().map(|&b| char::from(b)).collect(),
        };
        Self {
            title: field(&text, "StreamTitle"),
            url: field(&text, "StreamUrl"),
        }
    }
}

/// `KEY='value';`: the value runs to the next `';` (titles contain quotes), or to the
/// end of the text.
fn field(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("{key}='"))? + key.len() + 2;
    let rest = &text[start..];
    let end = rest
        .find("';")
        .unwrap_or_else(|| rest.strip_suffix('\'').map_or(rest.len(), str::len));
    Some(rest[..end].to_owned())
}

/// What the demuxer hands out, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Audio bytes, exactly as sent.
    Audio(&'a [u8]),
    /// This many audio bytes were lost in a capture gap (their place is known).
    AudioGap(u64),
    /// A metadata block with text (blocks of length 0 are not reported).
    Meta(Metadata),
    /// Something worth a note: a damaged block, a loss of the place, resynchronising.
    Note(Note),
}

/// A note from the demuxer, with body offsets (bytes of the response body, metadata
/// included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A gap took part of a block's text: its title is unknown.
    BlockDamaged {
        /// Where the block's length byte is.
        at: u64,
    },
    /// A gap took a length byte: the place of the blocks is lost.
    SyncLost {
        /// Where the lost length byte was.
        at: u64,
    },
    /// The place was found again at a block with a title.
    Resynced {
        /// Where that block's length byte is.
        at: u64,
        /// Bytes between the loss and here that could not be placed (dropped).
        unplaced: u64,
    },
    /// The body ended inside a block, or while the place was lost.
    EndedInside {
        /// Bytes at the end that could not be placed.
        unplaced: u64,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BlockDamaged { at } => write!(
                f,
                "the metadata block at body offset {at} was damaged by a capture gap; its title is unknown"
            ),
            Self::SyncLost { at } => write!(
                f,
                "a capture gap took the metadata length byte at body offset {at}: the place of the blocks was lost"
            ),
            Self::Resynced { at, unplaced } => write!(
                f,
                "found the metadata blocks again at body offset {at}; {unplaced} bytes before it could not be placed and were dropped"
            ),
            Self::EndedInside { unplaced } => write!(
                f,
                "the stream ended inside a metadata block or while its place was lost ({unplaced} bytes could not be placed)"
            ),
        }
    }
}

/// What the demuxer counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Blocks removed (length 0 included).
    pub blocks: u64,
    /// Audio bytes handed out (gaps included).
    pub audio_bytes: u64,
    /// Times the place was lost.
    pub sync_lost: u64,
    /// Bytes that could not be placed after a loss.
    pub unplaced_bytes: u64,
}

/// Where the demuxer stands.
///
/// Invariant: `block` holds bytes only in `Block` (at most `need`) and `Candidate` (at
/// most 16·255) states; `window` holds at most `TITLE_KEY.len()` bytes, only in `Lost`.
#[derive(Debug)]
enum State {
    /// This many audio bytes until the next length byte (0: the length byte is next).
    Audio { left: u64 },
    /// Reading a block of `need` bytes whose length byte was at `at`.
    Block { at: u64, need: usize, damaged: bool },
    /// The place is lost since the length byte at `lost_at`: looking for `L StreamTitle='`.
    Lost { lost_at: u64 },
    /// A possible block after a loss, length byte at `at`, `need` bytes long.
    Candidate { lost_at: u64, at: u64, need: usize },
}

/// Removes ICY metadata blocks from a body; see the module docs.
#[derive(Debug)]
pub struct Demuxer {
    metaint: u64,
    state: State,
    /// Body offset of the next byte.
    pos: u64,
    block: Vec<u8>,
    /// `Lost`: the last bytes seen, so a key split between pieces is found.
    window: Vec<u8>,
    stats: DemuxStats,
}

impl Demuxer {
    /// A demuxer for blocks every `metaint` audio bytes (checked by [`parse_metaint`]).
    pub fn new(metaint: u64) -> Self {
        Self {
            metaint,
            state: State::Audio { left: metaint },
            pos: 0,
            block: Vec::new(),
            window: Vec::new(),
            stats: DemuxStats::default(),
        }
    }

    /// What was counted so far.
    pub fn stats(&self) -> &DemuxStats {
        &self.stats
    }

    /// The next piece of the body.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut dyn FnMut(Event<'_>)) {
        while !bytes.is_empty() {
            let n = self.step(bytes, out);
            self.pos += n as u64;
            bytes = &bytes[n..];
        }
    }

    /// One state's worth of `bytes`; returns how many were used.
    fn step(&mut self, bytes: &[u8], out: &mut dyn FnMut(Event<'_>)) -> usize {
        match self.state {
            State::Audio { left: 0 } => {
                self.stats.blocks += 1;
                let need = usize::from(bytes[0]) * 16;
                self.state = if need == 0 {
                    State::Audio { left: self.metaint }
                } else {
                    State::Block {
                        at: self.pos,
                        need,
                        damaged: false,
                    }
                };
                1
            }
            State::Audio { left } => {
                let n = left.min(bytes.len() as u64) as usize;
                self.stats.audio_bytes += n as u64;
                out(Event::Audio(&bytes[..n]));
                self.state = State::Audio {
                    left: left - n as u64,
                };
                n
            }
            State::Block { need, damaged, at } => {
                let n = (need - self.block.len()).min(bytes.len());
                self.block.extend_from_slice(&bytes[..n]);
                if self.block.len() == need {
                    if damaged {
                        out(Event::Note(Note::BlockDamaged { at }));
                    } else {
                        out(Event::Meta(Metadata::parse(&self.block)));
                    }
                    self.block.clear();
                    self.state = State::Audio { left: self.metaint };
                }
                n
            }
            State::Lost { lost_at } => self.look(lost_at, bytes),
            State::Candidate { lost_at, at, need } => {
                let n = (need - self.block.len()).min(bytes.len());
                self.block.extend_from_slice(&bytes[..n]);
                if self.block.len() < need {
                    return n;
                }
                let block = std::mem::take(&mut self.block);
                if looks_like_metadata(&block) {
                    self.stats.unplaced_bytes += at - lost_at;
                    out(Event::Note(Note::Resynced {
                        at,
                        unplaced: at - lost_at,
                    }));
                    out(Event::Meta(Metadata::parse(&block)));
                    self.stats.blocks += 1;
                    self.state = State::Audio { left: self.metaint };
                    self.block = block;
                    self.block.clear();
                } else {
                    // Not a block: look again from the byte after its length byte.
                    self.state = State::Lost { lost_at };
                    self.window.clear();
                    let mut back = Demuxer {
                        metaint: self.metaint,
                        state: State::Lost { lost_at },
                        pos: at + 1,
                        block: Vec::new(),
                        window: Vec::new(),
                        stats: DemuxStats::default(),
                    };
                    back.feed(&block, out);
                    // Whatever the rescan found, it continues from here.
                    self.state = back.state;
                    self.window = back.window;
                    self.block = back.block;
                    self.stats.blocks += back.stats.blocks;
                    self.stats.unplaced_bytes += back.stats.unplaced_bytes;
                    self.stats.audio_bytes += back.stats.audio_bytes;
                }
                n
            }
        }
    }

    /// `Lost`: look for `L StreamTitle='` at a position the lost blocks could lead to.
    /// Returns the bytes of `bytes` consumed: up to and including a found length byte
    /// (none when it was among the carried bytes), or all of them.
    fn look(&mut self, lost_at: u64, bytes: &[u8]) -> usize {
        // Search the carried tail and the new bytes together (both small in this rare
        // state: the tail is at most the key's length).
        let carried = self.window.len();
        let base = self.pos - carried as u64;
        let mut hay = std::mem::take(&mut self.window);
        hay.extend_from_slice(bytes);
        let mut from = 1;
        while let Some(k) = memchr::memmem::find(&hay[from..], TITLE_KEY) {
            let key = from + k;
            let at = base + key as u64 - 1;
            let len = hay[key - 1];
            if len > 0 && consistent(self.metaint, lost_at, at) {
                let need = usize::from(len) * 16;
                self.state = State::Candidate { lost_at, at, need };
                // Block bytes already consumed with the carried tail.
                let held = key.min(carried)..carried;
                self.block.clear();
                self.block
                    .extend_from_slice(&hay[held.start..held.end.min(held.start + need)]);
                return key.saturating_sub(carried);
            }
            from = key + 1;
        }
        let keep = hay.len().min(TITLE_KEY.len());
        self.window = hay[hay.len() - keep..].to_vec();
        bytes.len()
    }

    /// `len` bytes of the body were lost.
    pub fn gap(&mut self, mut len: u64, out: &mut dyn FnMut(Event<'_>)) {
        while len > 0 {
            let used = match self.state {
                State::Audio { left: 0 } => {
                    self.stats.sync_lost += 1;
                    out(Event::Note(Note::SyncLost { at: self.pos }));
                    self.state = State::Lost { lost_at: self.pos };
                    self.window.clear();
                    0
                }
                State::Audio { left } => {
                    let n = left.min(len);
                    self.stats.audio_bytes += n;
                    out(Event::AudioGap(n));
                    self.state = State::Audio { left: left - n };
                    n
                }
                State::Block { at, need, .. } => {
                    let n = ((need - self.block.len()) as u64).min(len);
                    self.block.resize(self.block.len() + n as usize, 0);
                    self.state = State::Block {
                        at,
                        need,
                        damaged: true,
                    };
                    if self.block.len() == need {
                        out(Event::Note(Note::BlockDamaged { at }));
                        self.block.clear();
                        self.state = State::Audio { left: self.metaint };
                    }
                    n
                }
                State::Lost { .. } => {
                    self.window.clear();
                    len
                }
                State::Candidate { lost_at, .. } => {
                    // The candidate cannot be checked: keep looking after the gap.
                    self.block.clear();
                    self.window.clear();
                    self.state = State::Lost { lost_at };
                    len
                }
            };
            self.pos += used;
            len -= used;
        }
    }

    /// The body is over: a note if it ended inside a block or while the place was lost.
    pub fn finish(&mut self, out: &mut dyn FnMut(Event<'_>)) {
        let unplaced = match self.state {
            State::Audio { .. } => return,
            State::Block { at, .. } => self.pos - at,
            State::Lost { lost_at } | State::Candidate { lost_at, .. } => self.pos - lost_at,
        };
        self.stats.unplaced_bytes += unplaced;
        out(Event::Note(Note::EndedInside { unplaced }));
        self.state = State::Audio { left: self.metaint };
        self.block.clear();
        self.window.clear();
    }
}

/// Can a length byte at `at` follow a lost one at `lost_at`? Each lost block moved the
/// next one by `1 + 16·L + metaint` bytes with `0 <= L <= 255`.
fn consistent(metaint: u64, lost_at: u64, at: u64) -> bool {
    let Some(d) = at.checked_sub(lost_at) else {
        return false;
    };
    let period = metaint + 1;
    let most = d / period;
    if most > MAX_LOST_BLOCKS {
        return true;
    }
    (1..=most).any(|n| {
        let r = d - n * period;
        r.is_multiple_of(16) && r / 16 <= 255 * n
    })
}

/// A block found after a loss must read `StreamTitle='…';`, then only NUL padding.
fn looks_like_metadata(block: &[u8]) -> bool {
    let end = block.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    block.starts_with(TITLE_KEY) && block[..end].ends_with(b";")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICY body: audio with a block after every `metaint` bytes; `titles[i]` is the
    /// text of block i (None: a zero-length block).
    fn icy_body(audio: &[u8], metaint: usize, titles: &[Option<&str>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, piece) in audio.chunks(metaint).enumerate() {
            out.extend_from_slice(piece);
            if piece.len() == metaint {
                out.extend(block(titles.get(i).copied().flatten()));
            }
        }
        out
    }

    fn block(title: Option<&str>) -> Vec<u8> {
        match title {
            None => vec![0],
            Some(t) => {
                let text = format!("StreamTitle='{t}';StreamUrl='http://x/';");
                let l = text.len().div_ceil(16);
                let mut b = vec![l as u8];
                b.extend_from_slice(text.as_bytes());
                b.resize(1 + l * 16, 0);
                b
            }
        }
    }

    fn audio(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[derive(Default, Debug, PartialEq)]
    struct Out {
        audio: Vec<u8>,
        gaps: u64,
        titles: Vec<(usize, Option<String>)>,
        notes: Vec<Note>,
    }

    fn run(d: &mut Demuxer, pieces: &[Result<&[u8], u64>]) -> Out {
        let mut o = Out::default();
        let mut sink = |e: Event<'_>| match e {
            Event::Audio(b) => o.audio.extend_from_slice(b),
            Event::AudioGap(n) => {
                o.gaps += n;
                o.audio.extend(std::iter::repeat_n(0, n as usize));
            }
            Event::Meta(m) => o.titles.push((o.audio.len(), m.title)),
            Event::Note(n) => o.notes.push(n),
        };
        for p in pieces {
            match p {
                Ok(b) => d.feed(b, &mut sink),
                Err(n) => d.gap(*n, &mut sink),
            }
        }
        d.finish(&mut sink);
        o
    }

    #[test]
    fn issue11_blocks_removed_at_every_split_point() {
        let a = audio(1000);
        let titles = [Some("A - One"), None, Some("B - Two"), None, None];
        let body = icy_body(&a, 200, &titles);
        let want_titles = vec![
            (200, Some("A - One".to_owned())),
            (600, Some("B - Two".to_owned())),
        ];
        for cut in 0..=body.len() {
            for cut2 in [cut, (cut + 17).min(body.len()), body.len()] {
                let mut d = Demuxer::new(200);
                let o = run(
                    &mut d,
                    &[Ok(&body[..cut]), Ok(&body[cut..cut2]), Ok(&body[cut2..])],
                );
                assert_eq!(o.audio, a, "cut at {cut}/{cut2}");
                assert_eq!(o.titles, want_titles, "cut at {cut}/{cut2}");
                assert!(o.notes.is_empty());
            }
        }
        // One byte at a time.
        let mut d = Demuxer::new(200);
        let pieces: Vec<Result<&[u8], u64>> = body.chunks(1).map(Ok).collect();
        assert_eq!(run(&mut d, &pieces).audio, a);
        assert_eq!(d.stats().blocks, 5);
    }

    #[test]
    fn issue11_gap_inside_audio_keeps_the_place() {
        let a = audio(1000);
        let body = icy_body(
            &a,
            200,
            &[Some("A"), Some("B"), Some("C"), Some("D"), Some("E")],
        );
        // Body offsets: audio 0..200, block 200..217, audio 217..417, ...
        let mut d = Demuxer::new(200);
        let o = run(&mut d, &[Ok(&body[..250]), Err(100), Ok(&body[350..])]);
        let mut want = a.clone();
        want[201..301].fill(0);
        assert_eq!(o.audio, want);
        assert_eq!(o.gaps, 100);
        assert_eq!(o.titles.len(), 5);
        assert!(o.notes.is_empty());
    }

    #[test]
    fn issue11_gap_inside_a_block_keeps_the_place_and_notes_it() {
        let a = audio(600);
        let body = icy_body(&a, 200, &[Some("A"), Some("B"), Some("C")]);
        let mut d = Demuxer::new(200);
        let o = run(&mut d, &[Ok(&body[..205]), Err(5), Ok(&body[210..])]);
        assert_eq!(o.audio, a);
        assert_eq!(o.notes, [Note::BlockDamaged { at: 200 }]);
        assert_eq!(o.titles.len(), 2);
    }

    #[test]
    fn issue11_gap_over_a_length_byte_resyncs_on_the_next_title() {
        let a = audio(2000);
        let titles = [
            Some("A"),
            None,
            Some("B"),
            None,
            Some("C"),
            Some("D"),
            None,
            None,
            None,
            None,
        ];
        let body = icy_body(&a, 200, &titles);
        // Lose 10 bytes around the second block (length byte 0 at body offset 200+49+200 = 449).
        let lost_at = 200 + 49 + 200;
        let mut d = Demuxer::new(200);
        let o = run(&mut d, &[Ok(&body[..445]), Err(10), Ok(&body[455..])]);
        // Audio before the loss: 400 bytes less the 4 before the length byte lost.
        assert_eq!(&o.audio[..396], &a[..396]);
        assert_eq!(o.notes[0], Note::SyncLost { at: lost_at });
        // Found again at the block of "B": after block 1 (empty) and 200 audio bytes.
        let b_at = lost_at + 1 + 200;
        assert_eq!(
            o.notes[1],
            Note::Resynced {
                at: b_at,
                unplaced: b_at - lost_at
            }
        );
        let titles: Vec<_> = o.titles.iter().map(|t| t.1.clone().unwrap()).collect();
        assert_eq!(titles, ["A", "B", "C", "D"]);
        // From there on, every audio byte is back in place.
        assert_eq!(&o.audio[400..], &a[600..]);
        assert_eq!(d.stats().sync_lost, 1);
        assert_eq!(d.stats().unplaced_bytes, 201);
        // The same wherever the bytes after the loss are cut into pieces.
        for cut in 455..body.len() {
            let mut d2 = Demuxer::new(200);
            let o2 = run(
                &mut d2,
                &[
                    Ok(&body[..445]),
                    Err(10),
                    Ok(&body[455..cut]),
                    Ok(&body[cut..]),
                ],
            );
            assert_eq!(o2, o, "cut at {cut}");
        }
    }

    #[test]
    fn issue11_a_title_at_an_impossible_place_is_not_believed() {
        // Audio that contains the key itself, right after a loss, at a position no
        // block could have moved to.
        let mut a = audio(1000);
        let fake = b"\x02StreamTitle='evil';\0\0\0\0\0\0\0\0\0\0\0\0\0";
        a[410..410 + fake.len()].copy_from_slice(fake);
        let body = icy_body(&a, 200, &[Some("A"), None, None, Some("B"), None]);
        let mut d = Demuxer::new(200);
        // Lose the length byte of block 1 (body offset 200 + 49 + 200 = 449); the fake
        // block's length byte is 11 bytes later, where no lost block could end.
        let o = run(&mut d, &[Ok(&body[..449]), Err(1), Ok(&body[450..])]);
        let titles: Vec<_> = o.titles.iter().map(|t| t.1.clone().unwrap()).collect();
        assert_eq!(titles, ["A", "B"]);
    }

    #[test]
    fn issue11_ends_inside_a_block_or_lost() {
        let a = audio(300);
        let body = icy_body(&a, 200, &[Some("A title that is long enough")]);
        let mut d = Demuxer::new(200);
        let o = run(&mut d, &[Ok(&body[..210])]);
        assert_eq!(o.audio, &a[..200]);
        assert_eq!(o.notes, [Note::EndedInside { unplaced: 10 }]);
    }

    #[test]
    fn issue11_metadata_text() {
        let m = Metadata::parse(
            b"StreamTitle='Don't Stop - Fleetwood Mac';StreamUrl='http://x/y';\0\0\0",
        );
        assert_eq!(m.title.as_deref(), Some("Don't Stop - Fleetwood Mac"));
        assert_eq!(m.url.as_deref(), Some("http://x/y"));
        // Latin-1 when not UTF-8.
        let m = Metadata::parse(b"StreamTitle='Caf\xe9 / ../x\x01';");
        assert_eq!(m.title.as_deref(), Some("Caf\u{e9} / ../x\u{1}"));
        assert_eq!(
            Metadata::parse(b"StreamTitle='';").title.as_deref(),
            Some("")
        );
        assert_eq!(Metadata::parse(b"nothing").title, None);
        assert_eq!(parse_metaint(b" 16000 "), Ok(16000));
        assert_eq!(parse_metaint(b"0"), Err(MetaintError::Zero));
        assert_eq!(
            parse_metaint(b"99999999"),
            Err(MetaintError::TooLarge(99_999_999))
        );
        assert!(matches!(
            parse_metaint(b"x"),
            Err(MetaintError::NotANumber(_))
        ));
    }

    #[test]
    fn issue11_ten_gigabytes_in_constant_memory() {
        // 1 MiB of body = 1024 periods of 1023 audio bytes and an empty block; fed 10240
        // times: 10 GiB. Offsets pass 2^32 and nothing grows.
        let metaint = 1023;
        let period: Vec<u8> = (0..1024)
            .map(|i| if i == 1023 { 0 } else { 0x55 })
            .collect();
        let chunk = period.repeat(1024);
        let mut d = Demuxer::new(metaint);
        let mut audio = 0u64;
        for _ in 0..10_240 {
            d.feed(&chunk, &mut |e| {
                if let Event::Audio(b) = e {
                    audio += b.len() as u64;
                }
            });
        }
        assert_eq!(audio, 10_240 * 1024 * 1023);
        assert_eq!(d.stats().blocks, 10_240 * 1024);
        assert!(d.block.capacity() == 0 && d.window.capacity() == 0);
    }
}
