//! Saving HTTP bodies as files: MIME filter, safe names, streaming writes, index.jsonl.
//!
//! [`Extractor`] is an [`HttpListener`]. For each response whose media type matches a
//! glob (or every response with `all`), it creates a file in the output directory when
//! the head arrives and writes the body as it streams by, so memory does not grow with
//! the body. When the transaction is over it appends one line to `DIR/index.jsonl`
//! ([`IndexEntry`]).
//!
//! The output directory is created when the first file is saved (nothing is created by a
//! run that saves nothing), unless the program opened it before (it drops its
//! privileges: [`Extractor::in_dir`]). Files are written as `NAME.part` and renamed when
//! closed; what was written, failed, evicted or deduplicated is decided and indexed by
//! the writer ([`writer`], with [`budget`] for the disk budget and dedup).
//!
//! Safety of the file system:
//! - names come from [`naming`] only (stream, transaction, sanitised last segment, MIME
//!   extension), never from Host or the raw URI;
//! - files are created with `openat(dirfd, name, O_CREAT | O_EXCL | O_NOFOLLOW)`: inside
//!   the directory opened at start, never following a symlink, never overwriting (an
//!   existing name gets a `~N` suffix instead).
//!
//! Content-coded bodies are written decoded; the raw bytes go to a sidecar file that is
//! removed when decoding succeeds and kept (as the saved file, with a note) when it fails.
//! A gap is written as zero bytes so offsets stay true, and the entry says
//! `complete: false` with the gap ranges: the padding is never silent.
//! 206 responses are saved with their range; once the parts of one resource (same URL,
//! validator and length) cover it from 0 to its end, they are merged into one more file.

pub mod budget;
pub mod detect;
pub mod frames;
pub mod hls;
mod join;
pub mod multipart;
pub mod naming;
mod parts;
mod radio;
mod ranges;
mod tracks;
mod writer;

use std::{
    collections::HashMap,
    ffi::CString,
    fs::File,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _},
    path::{Path, PathBuf},
};

pub use writer::Outcome;
use writer::{Job, Writer};

use crate::{
    http::{BodyEvent, ContentRange, HttpListener, MessageHead, Transaction, parser::Framing},
    records::{Endpoints, FileRecord, IcyTrack},
    wire::{Direction, Timestamp, community_id},
};

/// A body being saved: its transaction, and which way it went (a request's body is an
/// upload).
type Key = (u64, u64, Direction);

/// The key of `tx`'s body in direction `dir`.
const fn key(tx: &Transaction, dir: Direction) -> Key {
    (tx.stream, tx.number, dir)
}

/// The head and time of `tx`'s message in direction `dir` (the request's for `Orig`).
fn message(tx: &Transaction, dir: Direction) -> Option<(&MessageHead, Timestamp)> {
    match dir {
        Direction::Resp => tx.response.as_ref().map(|r| (&r.head, r.ts)),
        Direction::Orig => tx.request.as_ref().map(|r| (&r.head, r.ts)),
    }
}

/// What the name of a request body's file (an upload) starts with.
const fn upload_prefix(upload: bool) -> &'static str {
    if upload { "up-" } else { "" }
}

/// Form fields sent as `a=1&b=2`: saved only when everything is.
const FORM_URLENCODED: &str = "application/x-www-form-urlencoded";

/// What to save, and where.
#[derive(Clone, Debug)]
pub struct ExtractConfig {
    /// Output directory (created, if missing, when the first file is saved).
    pub dir: PathBuf,
    /// Media types to save (lower-case globs such as `audio/*`).
    pub globs: Vec<glob::Pattern>,
    /// Save every body whatever its type.
    pub all: bool,
    /// Cut radio streams into one file per title (`--no-split` turns it off: one file per
    /// stream, metadata still removed).
    pub split_tracks: bool,
    /// Bytes the output directory may hold; the oldest saved files are deleted to stay
    /// within it (`--max-disk`).
    pub budget: Option<u64>,
    /// Store a body whose sha256 was already saved once; later copies are hard links.
    pub dedup: bool,
    /// The Community ID seed of the index lines (`0` unless agreed otherwise).
    pub community_id_seed: u16,
}

impl Default for ExtractConfig {
    /// `./sniffed`, nothing selected, radio streams split into tracks, no budget.
    fn default() -> Self {
        Self {
            dir: PathBuf::from("sniffed"),
            globs: Vec::new(),
            all: false,
            split_tracks: true,
            budget: None,
            dedup: false,
            community_id_seed: 0,
        }
    }
}

/// Why extraction could not start or a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The output path exists and is not a directory.
    #[error("output directory {dir}: exists and is not a directory")]
    NotADirectory {
        /// The path given.
        dir: PathBuf,
    },
    /// The output directory could not be created or opened.
    #[error("output directory {dir}: {source}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file in the output directory could not be created or written.
    #[error("{dir}/{name}: {source}")]
    File {
        /// The directory.
        dir: PathBuf,
        /// The file's name.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// One line of `index.jsonl`: a saved file and where it came from (the `file` record of
/// the JSON vocabulary).
pub type IndexEntry = FileRecord;

/// Called on the hasher thread with each index line just written to `index.jsonl`
/// (sha256 and size filled in), in the order of the file: e.g. to send it on as an event.
pub type IndexHook = Box<dyn FnMut(&IndexEntry) + Send>;

/// What the extractor counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExtractStats {
    /// Files saved (index lines written), merged files included.
    pub saved: u64,
    /// Saved files marked incomplete.
    pub incomplete: u64,
    /// Files merged from 206 parts.
    pub merged: u64,
    /// Bodies kept raw because decoding failed.
    pub kept_raw: u64,
    /// Bodies wanted but refused as malformed (not saved).
    pub refused: u64,
    /// Files that could not be created or written whole (indexed with their error,
    /// never counted as saved).
    pub failed: u64,
    /// Bytes in saved files.
    pub bytes: u64,
    /// Files cut short because the disk budget was reached (saved, incomplete).
    pub over_budget: u64,
    /// Saved files deleted to stay within the disk budget.
    pub evicted: u64,
    /// Bytes freed by those deletions.
    pub evicted_bytes: u64,
    /// Files stored as hard links to an earlier identical body (`--dedup`).
    pub deduplicated: u64,
    /// index.jsonl lines that could not be written.
    pub index_errors: u64,
    /// `.part` files found in the directory at start: left by a run that was killed.
    pub leftover_parts: u64,
    /// Radio streams (responses with `icy-metaint`) whose metadata was removed.
    pub radio_streams: u64,
    /// Track files of radio streams.
    pub tracks: u64,
    /// Bytes of radio streams that could not be placed after a loss (dropped).
    pub unplaced_bytes: u64,
    /// Files joined from HLS segments.
    pub joined: u64,
}

/// Declared types that say nothing of the content: the first bytes decide whether such a
/// body is wanted.
pub const GENERIC_TYPES: [&str; 9] = [
    "application/octet-stream",
    "binary/octet-stream",
    "application/x-download",
    "application/force-download",
    "application/download",
    "application/x-octet-stream",
    "application/unknown",
    "application/binary",
    "text/plain",
];

/// Is a declared type (lower case, no parameters) missing or generic, or a container
/// whose content decides what it is (`video/mp2t`: HLS radio sends audio-only MPEG-TS
/// under it, detected as `audio/mp2t`)?
pub fn is_generic(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|t| GENERIC_TYPES.contains(&t) || t == "video/mp2t")
}

/// A file being filled, as the extractor sees it: the bytes not yet handed to the writer
/// thread, and the length so far.
struct Sink {
    id: u64,
    name: String,
    len: u64,
    buf: Vec<u8>,
}

impl Sink {
    fn write_at(&mut self, w: &Writer, offset: u64, bytes: &[u8]) {
        if offset > self.len {
            self.pad(w, offset - self.len);
        }
        let skip = (self.len - offset).min(bytes.len() as u64) as usize;
        let mut bytes = &bytes[skip..];
        self.len += bytes.len() as u64;
        // Hand over exactly `BUF` bytes at a time: the buffer never grows past its
        // capacity, and the file is written in page-aligned pieces.
        while !bytes.is_empty() {
            let k = (BUF - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..k]);
            bytes = &bytes[k..];
            if self.buf.len() >= BUF {
                self.flush(w);
            }
        }
    }

    fn pad(&mut self, w: &Writer, n: u64) {
        self.flush(w);
        w.send(Job::Pad {
            id: self.id,
            len: n,
        });
        self.len += n;
    }

    fn flush(&mut self, w: &Writer) {
        if !self.buf.is_empty() {
            let buf = std::mem::replace(&mut self.buf, w.buffer(BUF));
            w.send(Job::Data { id: self.id, buf });
        }
    }
}

/// What a saved body's name is made of (kept so the body can be named after its head).
struct NameParts {
    stream: u64,
    number: u64,
    uri: Vec<u8>,
    declared: Option<String>,
    encoded: bool,
    /// A request's body: its name starts with `up-`.
    upload: bool,
}

/// Where a wanted body's bytes go.
enum Out {
    /// Detection is still looking: the first bytes (decoded, and raw when content-coded),
    /// at most [`detect::PREFIX`] of each (four times that of raw bytes).
    Pending { main: Vec<u8>, raw: Vec<u8> },
    /// Into its file (the decoded body), and the raw bytes while decoding might fail.
    Files { main: Sink, raw: Option<Sink> },
    /// A radio stream: metadata removed, cut into tracks.
    Icy(Box<radio::IcyBody>),
    /// A multipart form or byteranges body: each part a file.
    Multipart(Box<parts::MultipartBody>),
    /// Not wanted after all (or its file could not be created).
    Dropped,
}

/// A body being saved.
struct OpenBody {
    /// What the index line says if the capture stops inside the body.
    ts: Timestamp,
    endpoints: Endpoints,
    name: NameParts,
    /// The declared type matched a glob (or everything is saved).
    declared_wanted: bool,
    detected: Option<detect::Detected>,
    out: Out,
    decode_failed: Option<String>,
    /// An HLS playlist's text, read for its segments (at most [`hls::MAX_PLAYLIST`]).
    playlist: Option<Vec<u8>>,
    /// Notes about the body from the extractor (a refused `icy-metaint`, …).
    notes: Vec<String>,
}

/// What one file being written holds: its buffer, and the writer thread's state for it
/// (file, name, sha256 state), about.
const SINK_BYTES: u64 = BUF as u64 + 512;

impl OpenBody {
    /// Memory held while the body is open, at most: its file buffers (a raw one too when
    /// content-coded), the prefix kept for detection, and a playlist's text. Decided by
    /// what is fixed at `on_head`, so it is the same from `on_head` to `on_done`.
    fn memory(&self) -> u64 {
        let encoded = u64::from(self.name.encoded);
        let sinks = (1 + encoded) * SINK_BYTES;
        let detection = detect::PREFIX as u64 * (1 + 4 * encoded);
        let playlist = if self.playlist.is_some() {
            hls::MAX_PLAYLIST as u64
        } else {
            0
        };
        let multipart = if matches!(self.out, Out::Multipart(_)) {
            parts::MEMORY
        } else {
            0
        };
        size_of::<(Key, Self)>() as u64 * 2 + sinks + detection + playlist + multipart
    }
}

/// Saves wanted bodies as files and indexes them.
///
/// Hashing runs on a hasher thread; [`Self::finish`] (or drop) waits for it.
/// The entries [`Self::on_done`] returns carry everything but `sha256`, which only
/// `index.jsonl` has (the writer fills it in).
pub struct Extractor {
    config: ExtractConfig,
    /// The output directory, once open (by [`Self::in_dir`]'s caller, or with the first
    /// file).
    dir: Option<File>,
    /// The writer, started with the first file.
    writer: Option<Writer>,
    /// Why the directory could not be made ready (then every file fails).
    unusable: Option<String>,
    /// Called with every index line of a file once written; handed to the writer.
    hook: Option<IndexHook>,
    next_id: u64,
    open: HashMap<Key, OpenBody, foldhash::fast::RandomState>,
    /// 206 parts by resource, until they make the whole file.
    ranges: ranges::Ranges,
    /// Playlists and saved files, for joining HLS segments at the end.
    hls: hls::Hls,
    /// Counted here: kept_raw, refused, leftovers, files that could not be created while
    /// the directory was unusable, and the radio and HLS counters.
    stats: ExtractStats,
    last: Option<IndexEntry>,
    /// The time of the packet being parsed.
    now: Timestamp,
    /// A body found unwanted by its first bytes: the HTTP layer is told to stop it.
    stop: Option<Key>,
    finished: bool,
    /// Sum of [`OpenBody::memory`] over `open`.
    memory: u64,
    /// Notes about the body closed last that no saved file carries (a multipart body none
    /// of whose parts was saved): for the transaction's line.
    unsaved_notes: Vec<String>,
}

/// Bytes gathered per file before they are written (and handed to the hasher thread).
const BUF: usize = 64 * 1024;

/// The writer, where a file is open (so the directory is ready and the writer started).
fn ready(writer: &Option<Writer>) -> &Writer {
    writer
        .as_ref()
        .expect("a file is open, so the directory is ready")
}

/// The name a file has while it is being written.
pub fn part_name(name: &str) -> String {
    format!("{name}.part")
}

/// Whether `name` exists in `dir` (as anything, symlinks not followed).
fn exists_in(dir: &File, name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string, `st` is written by the kernel only.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &raw mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
    }
}

/// `openat(dir, name)` creating a new file: never follows a symlink, never overwrites.
fn create_in(dir: &File, name: &str, append: bool) -> io::Result<File> {
    if !naming::is_safe(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unsafe file name {name:?}"),
        ));
    }
    let c = CString::new(name).map_err(io::Error::other)?;
    // Read and write: a file whose write failed is read back to index what it holds.
    let flags = libc::O_RDWR
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_CLOEXEC
        | if append { libc::O_APPEND } else { libc::O_EXCL };
    // SAFETY: `c` is a valid NUL-terminated string and `dir` an open directory for the
    // duration of the call; the returned descriptor is owned by the File below.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Open `name` in `dir` for reading, not following symlinks.
fn open_in(dir: &File, name: &str) -> io::Result<File> {
    let c = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: as in `create_in`.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn remove_in(dir: &File, name: &str) -> io::Result<()> {
    let c = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: as in `create_in`.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Extractor {
    /// An extractor for `config`. Nothing is created yet: the directory, its
    /// `index.jsonl` and the hasher thread come with the first saved file (or
    /// [`Self::prepare`]).
    ///
    /// # Errors
    /// The output path exists and is not a directory.
    pub fn new(config: ExtractConfig) -> Result<Self, ExtractError> {
        if config.dir.exists() && !config.dir.is_dir() {
            return Err(ExtractError::NotADirectory {
                dir: config.dir.clone(),
            });
        }
        Ok(Self::with_dir(config, None))
    }

    /// As [`Self::new`], with `hook` called for every index line of a file once it is
    /// written (for event sinks).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_index_hook(
        config: ExtractConfig,
        hook: Option<IndexHook>,
    ) -> Result<Self, ExtractError> {
        let mut ex = Self::new(config)?;
        ex.hook = hook;
        Ok(ex)
    }

    /// Hand every index line of a file, once written, to `hook` too.
    pub fn set_index_hook(&mut self, hook: Option<IndexHook>) {
        self.hook = hook;
    }

    /// Like [`Self::new`], in a directory the caller opened already (`config.dir` is its
    /// path, for messages): a program that drops its privileges opens the directory
    /// before, and the extractor's index and thread still come with the first file.
    pub fn in_dir(config: ExtractConfig, dir: File) -> Self {
        Self::with_dir(config, Some(dir))
    }

    fn with_dir(config: ExtractConfig, dir: Option<File>) -> Self {
        Self {
            config,
            dir,
            writer: None,
            unusable: None,
            hook: None,
            next_id: 0,
            open: HashMap::default(),
            ranges: ranges::Ranges::default(),
            hls: hls::Hls::default(),
            stats: ExtractStats::default(),
            last: None,
            now: Timestamp::default(),
            stop: None,
            finished: false,
            memory: 0,
            unsaved_notes: Vec::new(),
        }
    }

    /// Create (if needed) and open the output directory and its `index.jsonl`, and start
    /// the hasher thread, now rather than at the first saved file.
    ///
    /// # Errors
    /// The directory or the index cannot be created or opened.
    pub fn prepare(&mut self) -> Result<(), ExtractError> {
        if self.writer.is_some() {
            return Ok(());
        }
        let path = self.config.dir.clone();
        let dir_err = |source| ExtractError::Dir {
            dir: path.clone(),
            source,
        };
        let dir = match self.dir.take() {
            Some(dir) => dir,
            None => {
                std::fs::create_dir_all(&self.config.dir).map_err(dir_err)?;
                File::open(&self.config.dir).map_err(dir_err)?
            }
        };
        if !dir.metadata().map_err(dir_err)?.is_dir() {
            return Err(ExtractError::NotADirectory {
                dir: self.config.dir.clone(),
            });
        }
        let found = self.survey().map_err(dir_err)?;
        let index = create_in(&dir, "index.jsonl", true).map_err(|source| ExtractError::File {
            dir: self.config.dir.clone(),
            name: "index.jsonl".into(),
            source,
        })?;
        let limits = writer::Limits {
            budget: self.config.budget,
            dedup: self.config.dedup,
        };
        let writer = Writer::start(
            dir.try_clone().map_err(dir_err)?,
            index,
            limits,
            found,
            self.hook.take(),
        )
        .map_err(dir_err)?;
        self.dir = Some(dir);
        self.writer = Some(writer);
        Ok(())
    }

    /// What the directory already holds, oldest first (name, size), for the budget;
    /// leftover `.part` files are counted and reported.
    fn survey(&mut self) -> io::Result<Vec<(String, u64)>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.config.dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !meta.is_file() || name == "index.jsonl" {
                continue;
            }
            if name.ends_with(".part") {
                self.stats.leftover_parts += 1;
            }
            found.push((meta.modified().ok(), name, meta.len()));
        }
        if self.stats.leftover_parts > 0 {
            log::warn!(
                "{}: {} .part file(s) left by an earlier run that was stopped by force: \
                 they are incomplete; kept as they are",
                self.config.dir.display(),
                self.stats.leftover_parts
            );
        }
        found.sort();
        Ok(found.into_iter().map(|(_, n, len)| (n, len)).collect())
    }

    /// The directory, made ready on first use. `None` when that failed (the reason is
    /// kept, and said once).
    fn ready_dir(&mut self) -> Option<&File> {
        if self.writer.is_none()
            && self.unusable.is_none()
            && let Err(e) = self.prepare()
        {
            log::warn!("nothing can be saved: {e}");
            self.unusable = Some(e.to_string());
        }
        if self.writer.is_some() {
            self.dir.as_ref()
        } else {
            None
        }
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// What was counted so far (final after [`Self::finish`]).
    pub fn stats(&self) -> ExtractStats {
        let w = self
            .writer
            .as_ref()
            .map(|w| writer::counts(&w.stats).clone())
            .unwrap_or_default();
        ExtractStats {
            failed: w.failed + self.stats.failed,
            kept_raw: self.stats.kept_raw,
            refused: self.stats.refused,
            leftover_parts: self.stats.leftover_parts,
            radio_streams: self.stats.radio_streams,
            tracks: self.stats.tracks,
            unplaced_bytes: self.stats.unplaced_bytes,
            joined: self.stats.joined,
            ..w
        }
    }

    /// Wait until everything handed over so far is written and indexed.
    pub fn sync(&self) {
        if let Some(w) = &self.writer {
            w.sync();
        }
    }

    /// What became of the files closed since the last call (each told once): saved, or
    /// failed with an error. Known once the writer has indexed them; [`Self::finish`]
    /// makes every outcome known.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.writer
            .as_ref()
            .map(Writer::outcomes)
            .unwrap_or_default()
    }

    /// Memory held for the bodies being written, O(1).
    pub const fn memory_in_use(&self) -> u64 {
        self.memory
    }

    /// Notes about the body closed last that no saved file carries (anomalies of a
    /// multipart body none of whose parts was wanted); cleared on read.
    pub fn take_unsaved_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unsaved_notes)
    }

    /// The entry of the last finished transaction that saved a file; cleared on read.
    pub fn take_last(&mut self) -> Option<IndexEntry> {
        self.last.take()
    }

    /// Whether a response with this media type is to be saved.
    pub fn wants(&self, content_type: Option<&str>) -> bool {
        self.config.all
            || self
                .config
                .globs
                .iter()
                .any(|g| g.matches(content_type.unwrap_or("")))
    }

    /// Create `NAME.part` for a new file named `name_for(attempt)` (the first attempt
    /// whose final name and `.part` name are both free); returns the final name.
    fn create_named(
        &mut self,
        name_for: &dyn Fn(u32) -> String,
    ) -> Result<(String, File), ExtractError> {
        let file_err = |dir: &Path, name: String, source| ExtractError::File {
            dir: dir.to_owned(),
            name,
            source,
        };
        let Some(dir) = self.ready_dir() else {
            let why = self.unusable.clone().unwrap_or_default();
            return Err(file_err(
                &self.config.dir,
                name_for(0),
                io::Error::other(why),
            ));
        };
        let mut last_err = None;
        for attempt in 0..1000 {
            let name = name_for(attempt);
            if exists_in(dir, &name) {
                last_err = Some((name, io::ErrorKind::AlreadyExists.into()));
                continue;
            }
            match create_in(dir, &part_name(&name), false) {
                Ok(f) => return Ok((name, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some((name, e)),
                Err(e) => return Err(file_err(&self.config.dir, name, e)),
            }
        }
        let (name, source) = last_err.expect("1000 attempts");
        Err(file_err(&self.config.dir, name, source))
    }

    /// A file that could not be created: indexed with its error (when the directory is
    /// usable), counted, and never reported as saved.
    fn creation_failed(&mut self, tx: &Transaction, e: ExtractError) {
        let (name, error) = match e {
            ExtractError::File { name, source, .. } => (name, source),
            other => (String::new(), io::Error::other(other.to_string())),
        };
        if self.unusable.is_none() {
            // (An unusable directory was said once already.)
            log::warn!("{}/{name}: not saved: {error}", self.config.dir.display());
        }
        match &self.writer {
            Some(w) if !name.is_empty() => {
                let mut entry = self.entry(tx, Direction::Resp, name, 0);
                entry.complete = false;
                w.send(Job::Failed {
                    entry: Box::new(entry),
                    error,
                });
            }
            _ => self.stats.failed += 1,
        }
    }

    /// The index line of `tx`'s body in direction `dir` saved as `file` (size and sha256
    /// are the writer's).
    fn entry(&self, tx: &Transaction, dir: Direction, file: String, size: u64) -> IndexEntry {
        let resp = tx.response.as_ref();
        let head = message(tx, dir).map(|(h, _)| h);
        IndexEntry {
            ts: message(tx, dir).map_or_else(Timestamp::default, |(_, ts)| ts),
            stream: tx.stream,
            transaction: tx.number,
            endpoints: Endpoints::new(tx.client, tx.server),
            community_id: community_id(self.config.community_id_seed, tx.client, tx.server),
            method: tx.method().to_owned(),
            url: tx.url(),
            dir,
            status: resp.map(|r| r.status).filter(|&s| s != 0),
            content_type: head.and_then(MessageHead::content_type),
            detected_type: None,
            content_encoding: head.and_then(|h| h.header_str("content-encoding")),
            range: tx.request.as_ref().and_then(|r| r.head.header_str("range")),
            content_range: resp.and_then(|r| r.head.header_str("content-range")),
            size,
            sha256: String::new(),
            file,
            complete: tx.body.complete,
            gaps: if tx.body.complete {
                Vec::new()
            } else {
                tx.body.gaps.clone()
            },
            notes: Vec::new(),
            part: None,
            merged_from: Vec::new(),
            icy: None,
            hls: None,
            error: None,
        }
    }

    /// A file for `name_for`, handed to the writer.
    fn sink_named(&mut self, name_for: &dyn Fn(u32) -> String) -> Result<Sink, ExtractError> {
        let (name, file) = self.create_named(name_for)?;
        let id = self.next_id;
        self.next_id += 1;
        ready(&self.writer).send(Job::Open {
            id,
            name: name.clone(),
            file,
        });
        Ok(Sink {
            id,
            name,
            len: 0,
            buf: ready(&self.writer).buffer(BUF),
        })
    }

    /// The file of a body: named from its URI, with the detected type's extension (else
    /// the declared type's).
    fn body_sink(
        &mut self,
        n: &NameParts,
        detected: Option<&detect::Detected>,
        prefix: &str,
    ) -> Result<Sink, ExtractError> {
        let ext = detected
            .map(|d| d.ext)
            .or_else(|| n.declared.as_deref().and_then(naming::extension_for));
        let up = upload_prefix(n.upload);
        self.sink_named(&|attempt| {
            format!(
                "{prefix}{up}{}",
                naming::file_name_ext(n.stream, n.number, &n.uri, ext, attempt)
            )
        })
    }

    /// A response head: take its body if it may be wanted. Bodies of a matching declared
    /// type are saved; bodies of a generic or missing type are saved if their first
    /// bytes show a matching type; playlists are read for HLS joining.
    pub fn on_head(&mut self, tx: &Transaction) -> bool {
        self.open_body(tx, Direction::Resp)
    }

    /// A request head with a body (an upload): the same rules as a response's, by the
    /// request's Content-Type; form fields (`application/x-www-form-urlencoded`) only
    /// when everything is saved.
    pub fn on_request_head(&mut self, tx: &Transaction) -> bool {
        self.open_body(tx, Direction::Orig)
    }

    fn open_body(&mut self, tx: &Transaction, dir: Direction) -> bool {
        let Some((head, ts)) = message(tx, dir) else {
            return false;
        };
        if tx.body.framing == Some(Framing::None) {
            return false;
        }
        let declared = head.content_type();
        let form = dir == Direction::Orig && declared.as_deref() == Some(FORM_URLENCODED);
        let declared_wanted = if form {
            self.config.all
        } else {
            self.wants(declared.as_deref())
        };
        let generic = !form && is_generic(declared.as_deref());
        let uri = tx.request.as_ref().map_or(&b""[..], |r| &r.uri);
        let playlist = dir == Direction::Resp && hls::is_playlist(declared.as_deref(), uri);
        let mut notes = Vec::new();
        let encoded = !tx.body.codings.is_empty();
        let saving = self.config.all || !self.config.globs.is_empty();
        if saving && let Some(kind) = parts::Kind::of(dir, declared.as_deref()) {
            // Its parts are selected one by one.
            match multipart::boundary(head.header("content-type").unwrap_or_default()) {
                Ok(boundary) => {
                    let template = self.entry(tx, dir, String::new(), 0);
                    let out = Out::Multipart(Box::new(parts::MultipartBody::new(
                        kind, &boundary, encoded, template,
                    )));
                    self.open_with(tx, dir, ts, uri, declared, true, out, notes, false);
                    return true;
                }
                Err(e) => notes.push(format!("{e}: the body is saved as it is")),
            }
        }
        // A multipart body that cannot be split is kept whole.
        let declared_wanted = declared_wanted || !notes.is_empty();
        if !(declared_wanted || generic || playlist) {
            return false;
        }
        let metaint = tx
            .response
            .as_ref()
            .filter(|_| dir == Direction::Resp)
            .and_then(radio::metaint);
        let out = match metaint {
            Some(Ok(metaint)) if !encoded && (declared_wanted || generic) => {
                self.stats.radio_streams += 1;
                Out::Icy(Box::new(radio::IcyBody::new(
                    tx,
                    metaint,
                    declared_wanted,
                    self.config.split_tracks,
                    self.now,
                )))
            }
            other => {
                match other {
                    Some(Err(e)) => notes.push(format!("{e}: the metadata blocks are left in the file")),
                    Some(Ok(_)) if encoded => notes.push(
                        "icy-metaint with a content coding: the metadata blocks are left in the file".into(),
                    ),
                    _ => {}
                }
                if declared_wanted || generic {
                    Out::Pending {
                        main: Vec::new(),
                        raw: Vec::new(),
                    }
                } else {
                    Out::Dropped
                }
            }
        };
        self.open_with(
            tx,
            dir,
            ts,
            uri,
            declared,
            declared_wanted,
            out,
            notes,
            playlist,
        );
        true
    }

    #[expect(clippy::too_many_arguments, reason = "the parts of one body, once")]
    fn open_with(
        &mut self,
        tx: &Transaction,
        dir: Direction,
        ts: Timestamp,
        uri: &[u8],
        declared: Option<String>,
        declared_wanted: bool,
        out: Out,
        notes: Vec<String>,
        playlist: bool,
    ) {
        let body = OpenBody {
            ts,
            endpoints: Endpoints::new(tx.client, tx.server),
            name: NameParts {
                stream: tx.stream,
                number: tx.number,
                uri: uri.to_vec(),
                declared,
                encoded: !tx.body.codings.is_empty(),
                upload: dir == Direction::Orig,
            },
            declared_wanted,
            detected: None,
            out,
            decode_failed: None,
            playlist: playlist.then(Vec::new),
            notes,
        };
        self.memory += body.memory();
        if let Some(old) = self.open.insert(key(tx, dir), body) {
            self.memory -= old.memory();
        }
    }

    /// A piece of a body started by [`Self::on_head`].
    pub fn on_body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        self.body_event(tx, event, Direction::Resp);
    }

    /// A piece of a request body started by [`Self::on_request_head`].
    pub fn on_request_body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        self.body_event(tx, event, Direction::Orig);
    }

    fn body_event(&mut self, tx: &Transaction, event: BodyEvent<'_>, dir: Direction) {
        let key = key(tx, dir);
        let Some(b) = self.open.get_mut(&key) else {
            return;
        };
        let encoded = b.name.encoded;
        if let Some(p) = &mut b.playlist
            && let BodyEvent::Raw { bytes, .. } | BodyEvent::Decoded { bytes, .. } = event
            && matches!(event, BodyEvent::Decoded { .. }) == encoded
        {
            let room = (hls::MAX_PLAYLIST + 1).saturating_sub(p.len());
            p.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        if let Out::Files { main, raw } = &mut b.out {
            // The common case, kept short.
            let w = ready(&self.writer);
            match event {
                BodyEvent::Raw { offset, bytes } if encoded => {
                    if let Some(raw) = raw {
                        raw.write_at(w, offset, bytes);
                    }
                }
                BodyEvent::Raw { offset, bytes } | BodyEvent::Decoded { offset, bytes } => {
                    if !(encoded && b.decode_failed.is_some()) {
                        main.write_at(w, offset, bytes);
                    }
                }
                BodyEvent::Gap { offset, len } => {
                    let target = if encoded { raw.as_mut() } else { Some(main) };
                    if let Some(s) = target
                        && offset >= s.len
                    {
                        s.pad(w, offset + len - s.len);
                    }
                }
                BodyEvent::DecodeFailed { reason } => {
                    b.decode_failed = Some(reason.to_owned());
                }
            }
            return;
        }
        if matches!(b.out, Out::Dropped) {
            if b.playlist.is_none() {
                self.stop = Some(key);
            }
            return;
        }
        let mut b = self.open.remove(&key).expect("looked up above");
        match &mut b.out {
            Out::Icy(icy) => self.icy_event(icy, event),
            Out::Multipart(m) => self.multipart_event(tx, dir, m, event),
            Out::Pending { main, raw } => {
                // Decide as soon as detection can, or when more would not help.
                let decided = match event {
                    BodyEvent::Raw { bytes, .. } if encoded => {
                        raw.extend_from_slice(bytes);
                        raw.len() >= 4 * detect::PREFIX
                    }
                    BodyEvent::Raw { bytes, .. } | BodyEvent::Decoded { bytes, .. } => {
                        main.extend_from_slice(bytes);
                        detect::detect(main, false, false) != detect::Verdict::More
                    }
                    BodyEvent::Gap { .. } => true,
                    BodyEvent::DecodeFailed { reason } => {
                        b.decode_failed = Some(reason.to_owned());
                        true
                    }
                };
                if decided {
                    self.settle(key, &mut b);
                    if matches!(event, BodyEvent::Gap { .. }) {
                        // Now that the body has its file, the gap goes in like any other.
                        self.open.insert(key, b);
                        self.body_event(tx, event, dir);
                        return;
                    }
                }
            }
            Out::Files { .. } | Out::Dropped => {}
        }
        self.open.insert(key, b);
    }

    /// Detection is over for a pending body: decide whether it is wanted, and if it is,
    /// create its file(s) and write what was held.
    fn settle(&mut self, key: Key, b: &mut OpenBody) {
        if !matches!(b.out, Out::Pending { .. }) {
            return;
        }
        let Out::Pending { main, raw } = std::mem::replace(&mut b.out, Out::Dropped) else {
            return;
        };
        b.detected = match detect::detect(&main, true, false) {
            detect::Verdict::Done(d) => d,
            detect::Verdict::More => None,
        };
        let wanted = b.declared_wanted
            || (is_generic(b.name.declared.as_deref())
                && b.detected.is_some_and(|d| self.wants(Some(d.mime))));
        if !wanted {
            if b.playlist.is_none() {
                self.stop = Some(key);
            }
            return;
        }
        let mut main_sink = match self.body_sink(&b.name, b.detected.as_ref(), "") {
            Ok(s) => s,
            Err(e) => {
                if self.unusable.is_none() {
                    log::warn!("not saved: {e}");
                }
                self.stats.failed += 1;
                return;
            }
        };
        let mut raw_sink = None;
        if b.name.encoded {
            match self.body_sink(&b.name, b.detected.as_ref(), "raw-") {
                Ok(mut s) => {
                    s.write_at(ready(&self.writer), 0, &raw);
                    raw_sink = Some(s);
                }
                Err(e) => log::warn!("raw copy not kept: {e}"),
            }
        }
        if !(b.name.encoded && b.decode_failed.is_some()) {
            main_sink.write_at(ready(&self.writer), 0, &main);
        }
        b.out = Out::Files {
            main: main_sink,
            raw: raw_sink,
        };
    }

    /// A transaction is over: close its file and have it indexed. Returns the entry
    /// (`sha256` is filled in `index.jsonl` by the writer).
    pub fn on_done(&mut self, tx: &Transaction) -> Option<IndexEntry> {
        self.close_body(tx, Direction::Resp).pop()
    }

    /// A request body is over: close its file(s) and have them indexed (`status` is
    /// null: the response is not known yet). Returns their entries, as [`Self::on_done`]
    /// (a multipart form gives one per saved part).
    pub fn on_request_done(&mut self, tx: &Transaction) -> Vec<IndexEntry> {
        self.close_body(tx, Direction::Orig)
    }

    /// The entries of the files of `tx`'s body in direction `dir` (for a multipart body,
    /// one per part, in order; otherwise at most one).
    fn close_body(&mut self, tx: &Transaction, dir: Direction) -> Vec<IndexEntry> {
        let key = key(tx, dir);
        let Some(mut b) = self.open.remove(&key) else {
            if dir == Direction::Resp
                && tx.malformed.is_some()
                && tx
                    .response
                    .as_ref()
                    .is_some_and(|r| self.wants(r.content_type().as_deref()))
            {
                self.stats.refused += 1;
            }
            return Vec::new();
        };
        if let (Some(text), Some(url)) = (&b.playlist, tx.url()) {
            let truncated = text.len() > hls::MAX_PLAYLIST;
            let text = &text[..text.len().min(hls::MAX_PLAYLIST)];
            let said = self.hls.playlist(
                &url,
                hls::Origin {
                    stream: tx.stream,
                    number: tx.number,
                    uri: b.name.uri.clone(),
                    endpoints: b.endpoints,
                    method: tx.method().to_owned(),
                },
                text,
                truncated,
            );
            b.notes.extend(said);
        }
        self.settle(key, &mut b);
        if self.stop == Some(key) {
            // Decided at the body's end: nothing left to stop.
            self.stop = None;
        }
        self.memory -= b.memory();
        let OpenBody {
            out,
            decode_failed,
            detected,
            notes: extra_notes,
            ..
        } = b;
        let (main, raw) = match out {
            Out::Files { main, raw } => (main, raw),
            Out::Icy(icy) => return self.icy_done(tx, *icy, extra_notes).into_iter().collect(),
            Out::Multipart(m) => return self.multipart_done(tx, dir, *m, extra_notes),
            Out::Pending { .. } | Out::Dropped => return Vec::new(),
        };
        let mut notes = tx.body.notes.clone();
        notes.extend(extra_notes);
        let decode_error = decode_failed.or_else(|| tx.body.decode_error.clone());
        let encoded = !tx.body.codings.is_empty();
        let mut usable = true;
        let (mut kept, dropped) = match (encoded, decode_error, raw) {
            (true, Some(why), Some(raw)) => {
                usable = false;
                self.stats.kept_raw += 1;
                notes.push(format!("{why}; the raw body is kept as sent"));
                (raw, Some(main))
            }
            (true, Some(why), None) => {
                usable = false;
                notes.push(format!("{why}; decoded prefix only"));
                (main, None)
            }
            (_, why, raw) => {
                if let Some(why) = why {
                    notes.push(why);
                }
                (main, raw)
            }
        };
        if let Some(d) = dropped {
            ready(&self.writer).send(Job::Remove { id: d.id });
        }
        kept.flush(ready(&self.writer));
        let complete = tx.body.complete;
        let entry = IndexEntry {
            detected_type: detected.map(|d| d.mime.to_owned()),
            notes,
            icy: tx
                .response
                .as_ref()
                .filter(|_| dir == Direction::Resp)
                .and_then(radio::station)
                .map(|station| IcyTrack {
                    station,
                    title: None,
                    stream_url: None,
                    track: None,
                    offset: 0,
                }),
            ..self.entry(tx, dir, kept.name.clone(), kept.len)
        };
        ready(&self.writer).send(Job::Close {
            id: kept.id,
            entry: Box::new(entry.clone()),
        });
        if dir == Direction::Orig {
            self.last = Some(entry.clone());
            return vec![entry];
        }
        if let Some(url) = &entry.url {
            self.hls.saved(
                url,
                hls::Saved {
                    file: entry.file.clone(),
                    complete: complete && usable,
                    ts: entry.ts,
                    ext: entry
                        .file
                        .rsplit_once('.')
                        .map_or_else(|| "bin".to_owned(), |(_, e)| e.to_owned()),
                    mime: entry
                        .detected_type
                        .clone()
                        .or_else(|| entry.content_type.clone()),
                },
            );
        }
        let mut result = entry.clone();
        if entry.status == Some(206)
            && complete
            && !encoded
            && let Some(merged) = self.add_part(tx, &entry)
        {
            result
                .notes
                .push(format!("completed the merged file {}", merged.file));
        }
        self.last = Some(result.clone());
        vec![result]
    }

    /// Record a complete 206 part; merge when the parts cover the resource.
    fn add_part(&mut self, tx: &Transaction, entry: &IndexEntry) -> Option<IndexEntry> {
        let resp = tx.response.as_ref()?;
        let cr = ContentRange::parse(resp.head.header("content-range")?)?;
        if cr.len() != entry.size {
            return None;
        }
        self.add_range(tx, entry, cr, entry.content_type.as_deref())
    }

    /// Record a complete part (bytes `cr` of its resource, saved as `entry`), of a
    /// response with a media type `mime`; merge when the parts cover the resource.
    fn add_range(
        &mut self,
        tx: &Transaction,
        entry: &IndexEntry,
        cr: ContentRange,
        mime: Option<&str>,
    ) -> Option<IndexEntry> {
        let resp = tx.response.as_ref()?;
        let total = cr.complete?;
        let validator = resp
            .head
            .header_str("etag")
            .or_else(|| resp.head.header_str("last-modified"))
            .unwrap_or_default();
        let part = ranges::Part {
            first: cr.first,
            last: cr.last,
            name: entry.file.clone(),
        };
        let plan = self
            .ranges
            .add((entry.url.clone()?, validator, total), &part)?;
        let uri = tx.request.as_ref().map_or(&b""[..], |r| &r.uri);
        let created = self.create_named(&|attempt| {
            format!(
                "full-{}",
                naming::file_name(tx.stream, tx.number, uri, mime, attempt)
            )
        });
        let (name, file) = match created {
            Ok(f) => f,
            Err(e) => {
                self.creation_failed(tx, e);
                return None;
            }
        };
        let n = plan.parts.len();
        let mut notes = vec![format!(
            "merged from {n} partial response{}",
            if n == 1 { "" } else { "s" }
        )];
        if plan.unchecked > 0 {
            notes.push(format!(
                "{} more overlaps between parts were not compared",
                plan.unchecked
            ));
        }
        let merged = IndexEntry {
            file: name,
            size: total,
            sha256: String::new(),
            complete: true,
            gaps: Vec::new(),
            range: None,
            content_type: mime.map(str::to_owned),
            content_range: Some(format!("bytes 0-{}/{total}", total - 1)),
            notes,
            part: None,
            merged_from: plan.parts.clone(),
            ..entry.clone()
        };
        ready(&self.writer).send(Job::Merge {
            file,
            pieces: plan.pieces,
            overlaps: plan.overlaps,
            entry: Box::new(merged.clone()),
        });
        Some(merged)
    }

    /// Close whatever is still open as incomplete, join the HLS segments, and wait until
    /// every file is written and indexed. Normally no body is open by then: the HTTP
    /// layer's own `finish` ends every body first. Idempotent.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let mut open: Vec<(Key, OpenBody)> = self.open.drain().collect();
        self.memory = 0;
        open.sort_by_key(|(k, _)| *k);
        for (key, mut b) in open {
            self.settle(key, &mut b);
            let mut main = match b.out {
                Out::Files { main, raw } => {
                    if let Some(raw) = raw {
                        ready(&self.writer).send(Job::Remove { id: raw.id });
                    }
                    main
                }
                Out::Icy(icy) => {
                    self.icy_cut_off(*icy);
                    continue;
                }
                Out::Multipart(m) => {
                    self.multipart_cut_off(*m);
                    continue;
                }
                Out::Pending { .. } | Out::Dropped => continue,
            };
            main.flush(ready(&self.writer));
            let entry = IndexEntry {
                ts: b.ts,
                stream: key.0,
                transaction: key.1,
                endpoints: b.endpoints,
                community_id: community_id(
                    self.config.community_id_seed,
                    b.endpoints.client(),
                    b.endpoints.server(),
                ),
                method: "-".into(),
                url: None,
                dir: key.2,
                status: None,
                content_type: b.name.declared,
                detected_type: b.detected.map(|d| d.mime.to_owned()),
                content_encoding: None,
                range: None,
                content_range: None,
                size: main.len,
                sha256: String::new(),
                file: main.name,
                complete: false,
                gaps: Vec::new(),
                notes: vec!["the capture stopped inside the body".into()],
                part: None,
                merged_from: Vec::new(),
                icy: None,
                hls: None,
                error: None,
            };
            ready(&self.writer).send(Job::Close {
                id: main.id,
                entry: Box::new(entry),
            });
        }
        self.join_hls();
        if let Some(w) = self.writer.as_mut() {
            w.stop();
        }
    }
}

impl Drop for Extractor {
    fn drop(&mut self) {
        self.finish();
    }
}

impl HttpListener for Extractor {
    fn response_head(&mut self, tx: &Transaction) -> bool {
        self.on_head(tx)
    }

    fn body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        self.on_body(tx, event);
    }

    fn wants_more_body(&mut self, tx: &Transaction) -> bool {
        self.wants_more(tx)
    }

    fn packet_time(&mut self, ts: Timestamp) {
        self.set_time(ts);
    }

    fn http_transaction(&mut self, tx: &Transaction) {
        self.on_done(tx);
    }

    fn request_head(&mut self, tx: &Transaction) -> bool {
        self.on_request_head(tx)
    }

    fn request_body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        self.on_request_body(tx, event);
    }

    fn wants_more_request_body(&mut self, tx: &Transaction) -> bool {
        self.wants_more_request(tx)
    }

    fn request_done(&mut self, tx: &Transaction) {
        self.on_request_done(tx);
    }

    fn memory_in_use(&self) -> u64 {
        self.memory
    }
}

impl Extractor {
    /// Whether the body of `tx` is still wanted (false once its first bytes showed it is
    /// not): for [`HttpListener::wants_more_body`].
    pub fn wants_more(&mut self, tx: &Transaction) -> bool {
        self.wants_more_of(tx, Direction::Resp)
    }

    /// As [`Self::wants_more`], for a request body.
    pub fn wants_more_request(&mut self, tx: &Transaction) -> bool {
        self.wants_more_of(tx, Direction::Orig)
    }

    fn wants_more_of(&mut self, tx: &Transaction, dir: Direction) -> bool {
        match self.stop {
            Some(k) if k == key(tx, dir) => {
                self.stop = None;
                self.open.remove(&k);
                false
            }
            _ => true,
        }
    }

    /// The time of the packet being parsed: for [`HttpListener::packet_time`] (tracks of a
    /// radio stream are stamped with it).
    pub fn set_time(&mut self, ts: Timestamp) {
        self.now = ts;
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests;
