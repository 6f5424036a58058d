//! Saving HTTP bodies as files: MIME filter, safe names, streaming writes, index.jsonl.
//!
//! [`Extractor`] is an [`HttpListener`]. For each response whose media type matches a
//! glob (or every response with `all`), it creates a file in the output directory when
//! the head arrives and writes the body as it streams by, so memory does not grow with
//! the body. When the transaction is over it appends one line to `DIR/index.jsonl`
//! ([`IndexEntry`]).
//!
//! The output directory is created when the first file is saved (nothing is created by a
//! run that saves nothing). Files are written as `NAME.part` and renamed when closed;
//! what was written, failed, evicted or deduplicated is decided and indexed by the
//! writer ([`writer`], with [`budget`] for the disk budget and dedup).
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
pub mod naming;
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
    http::{BodyEvent, ContentRange, HttpListener, Transaction, parser::Framing},
    records::{Endpoints, FileRecord},
    wire::Timestamp,
};

/// What to save, and where.
#[derive(Clone, Debug, Default)]
pub struct ExtractConfig {
    /// Output directory (created, if missing, when the first file is saved).
    pub dir: PathBuf,
    /// Media types to save (lower-case globs such as `audio/*`).
    pub globs: Vec<glob::Pattern>,
    /// Save every body whatever its type.
    pub all: bool,
    /// Bytes the output directory may hold; the oldest saved files are deleted to stay
    /// within it (`--max-disk`).
    pub budget: Option<u64>,
    /// Store a body whose sha256 was already saved once; later copies are hard links.
    pub dedup: bool,
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

/// A body being saved.
struct OpenBody {
    /// What the index line says if the capture stops inside the body.
    ts: Timestamp,
    endpoints: Endpoints,
    /// Decoded body (or the body itself when not content-coded).
    main: Sink,
    /// Raw content-coded bytes, while decoding might still fail.
    raw: Option<Sink>,
    decode_failed: Option<String>,
}

/// A complete 206 part of some resource.
struct Part {
    first: u64,
    last: u64,
    name: String,
}

/// Saves wanted bodies as files and indexes them.
///
/// Hashing runs on a hasher thread; [`Self::finish`] (or drop) waits for it.
/// The entries [`Self::on_done`] returns carry everything but `sha256`, which only
/// `index.jsonl` has (the writer fills it in).
pub struct Extractor {
    config: ExtractConfig,
    /// The directory, when the caller opened it ([`Self::in_dir`]) and no file came yet.
    opened: Option<File>,
    /// The directory and its writer, once the first file is saved.
    active: Option<Active>,
    /// Why the directory could not be made ready (then every file fails).
    unusable: Option<String>,
    next_id: u64,
    open: HashMap<(u64, u64), OpenBody, foldhash::fast::RandomState>,
    /// 206 parts by (URL, validator, complete length).
    parts: HashMap<(String, String, u64), Vec<Part>>,
    /// Counted here: kept_raw, refused, leftovers, and files that could not be created
    /// while the directory was unusable.
    stats: ExtractStats,
    last: Option<IndexEntry>,
}

/// The output directory, open, and the writer of its files.
struct Active {
    dir: File,
    writer: Writer,
}

/// Bytes gathered per file before they are written (and handed to the hasher thread).
const BUF: usize = 64 * 1024;

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
        Ok(Self {
            config,
            opened: None,
            active: None,
            unusable: None,
            next_id: 0,
            open: HashMap::default(),
            parts: HashMap::new(),
            stats: ExtractStats::default(),
            last: None,
        })
    }

    /// Like [`Self::new`], in a directory the caller opened already (`config.dir` is its
    /// path, for messages): a program that drops its privileges opens the directory
    /// before, and the extractor's index and thread still come with the first file.
    pub fn in_dir(config: ExtractConfig, dir: File) -> Self {
        Self {
            opened: Some(dir),
            active: None,
            unusable: None,
            next_id: 0,
            open: HashMap::default(),
            parts: HashMap::new(),
            stats: ExtractStats::default(),
            last: None,
            config,
        }
    }

    /// Create (if needed) and open the output directory and its `index.jsonl`, and start
    /// the hasher thread, now rather than at the first saved file.
    ///
    /// # Errors
    /// The directory or the index cannot be created or opened.
    pub fn prepare(&mut self) -> Result<(), ExtractError> {
        if self.active.is_some() {
            return Ok(());
        }
        let path = self.config.dir.clone();
        let dir_err = |source| ExtractError::Dir {
            dir: path.clone(),
            source,
        };
        let dir = match self.opened.take() {
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
        let writer = Writer::start(dir.try_clone().map_err(dir_err)?, index, limits, found)
            .map_err(dir_err)?;
        self.active = Some(Active { dir, writer });
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

    /// The directory and writer, made ready on first use. `None` when that failed (the
    /// reason is kept, and said once).
    fn active(&mut self) -> Option<&Active> {
        if self.active.is_none()
            && self.unusable.is_none()
            && let Err(e) = self.prepare()
        {
            log::warn!("nothing can be saved: {e}");
            self.unusable = Some(e.to_string());
        }
        self.active.as_ref()
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// What was counted so far (final after [`Self::finish`]).
    pub fn stats(&self) -> ExtractStats {
        let w = self
            .active
            .as_ref()
            .map(|a| writer::counts(&a.writer.stats).clone())
            .unwrap_or_default();
        ExtractStats {
            failed: w.failed + self.stats.failed,
            kept_raw: self.stats.kept_raw,
            refused: self.stats.refused,
            leftover_parts: self.stats.leftover_parts,
            ..w
        }
    }

    /// Wait until everything handed over so far is written and indexed.
    pub fn sync(&self) {
        if let Some(a) = &self.active {
            a.writer.sync();
        }
    }

    /// What became of the files closed since the last call (each told once): saved, or
    /// failed with an error. Known once the writer has indexed them; [`Self::finish`]
    /// makes every outcome known.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.active
            .as_ref()
            .map(|a| a.writer.outcomes())
            .unwrap_or_default()
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

    /// The writer; only called while a file is open, so the directory is ready.
    fn writer(&self) -> &Writer {
        &self
            .active
            .as_ref()
            .expect("a file is open, so the directory is ready")
            .writer
    }

    /// Create `NAME.part` for a new file whose final name is free too; returns the final
    /// name. On failure, the name that was tried.
    fn create(
        &mut self,
        tx: &Transaction,
        prefix: &str,
    ) -> Result<(String, File), (String, io::Error)> {
        let uri = tx.request.as_ref().map_or(&b""[..], |r| &r.uri);
        let ct = tx.response.as_ref().and_then(|r| r.content_type());
        let first = format!(
            "{prefix}{}",
            naming::file_name(tx.stream, tx.number, uri, ct.as_deref(), 0)
        );
        let Some(active) = self.active() else {
            let why = self.unusable.clone().unwrap_or_default();
            return Err((first, io::Error::other(why)));
        };
        let mut last_err = None;
        for attempt in 0..1000 {
            let name = format!(
                "{prefix}{}",
                naming::file_name(tx.stream, tx.number, uri, ct.as_deref(), attempt)
            );
            if exists_in(&active.dir, &name) {
                last_err = Some((name, io::ErrorKind::AlreadyExists.into()));
                continue;
            }
            match create_in(&active.dir, &part_name(&name), false) {
                Ok(f) => return Ok((name, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some((name, e)),
                Err(e) => return Err((name, e)),
            }
        }
        Err(last_err.expect("1000 attempts"))
    }

    fn sink(&mut self, tx: &Transaction, prefix: &str) -> Result<Sink, (String, io::Error)> {
        let (name, file) = self.create(tx, prefix)?;
        let id = self.next_id;
        self.next_id += 1;
        let writer = self.writer();
        writer.send(Job::Open {
            id,
            name: name.clone(),
            file,
        });
        Ok(Sink {
            id,
            name,
            len: 0,
            buf: writer.buffer(BUF),
        })
    }

    /// A file that could not be created: indexed with its error (when the directory is
    /// usable), counted, and never reported as saved.
    fn creation_failed(&mut self, tx: &Transaction, name: String, error: io::Error) {
        if self.unusable.is_none() {
            // (An unusable directory was said once already.)
            log::warn!("{}/{name}: not saved: {error}", self.config.dir.display());
        }
        match &self.active {
            Some(a) => {
                let mut entry = self.entry(tx, name, 0);
                entry.complete = false;
                a.writer.send(Job::Failed {
                    entry: Box::new(entry),
                    error,
                });
            }
            None => self.stats.failed += 1,
        }
    }

    /// The index line of `tx`'s body saved as `file` (size and sha256 are the writer's).
    fn entry(&self, tx: &Transaction, file: String, size: u64) -> IndexEntry {
        let resp = tx.response.as_ref();
        IndexEntry {
            ts: resp.map_or_else(Timestamp::default, |r| r.ts),
            stream: tx.stream,
            transaction: tx.number,
            endpoints: Endpoints::new(tx.client, tx.server),
            method: tx.method().to_owned(),
            url: tx.url(),
            status: resp.map_or(0, |r| r.status),
            content_type: resp.and_then(|r| r.content_type()),
            content_encoding: resp.and_then(|r| r.head.header_str("content-encoding")),
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
            merged_from: Vec::new(),
            error: None,
        }
    }

    /// A response head: start a file if the body is wanted.
    pub fn on_head(&mut self, tx: &Transaction) -> bool {
        let Some(resp) = &tx.response else {
            return false;
        };
        if tx.body.framing == Some(Framing::None) || !self.wants(resp.content_type().as_deref()) {
            return false;
        }
        let main = match self.sink(tx, "") {
            Ok(s) => s,
            Err((name, e)) => {
                self.creation_failed(tx, name, e);
                return false;
            }
        };
        let raw = if tx.body.codings.is_empty() {
            None
        } else {
            match self.sink(tx, "raw-") {
                Ok(s) => Some(s),
                Err((name, e)) => {
                    log::warn!("{name}: raw copy not kept: {e}");
                    None
                }
            }
        };
        self.open.insert(
            (tx.stream, tx.number),
            OpenBody {
                ts: resp.ts,
                endpoints: Endpoints::new(tx.client, tx.server),
                main,
                raw,
                decode_failed: None,
            },
        );
        true
    }

    /// A piece of a body started by [`Self::on_head`].
    pub fn on_body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        let Some(b) = self.open.get_mut(&(tx.stream, tx.number)) else {
            return;
        };
        let w = &self
            .active
            .as_ref()
            .expect("a file is open, so the directory is ready")
            .writer;
        let encoded = !tx.body.codings.is_empty();
        match event {
            BodyEvent::Raw { offset, bytes } if encoded => {
                if let Some(raw) = &mut b.raw {
                    raw.write_at(w, offset, bytes);
                }
            }
            BodyEvent::Raw { offset, bytes } | BodyEvent::Decoded { offset, bytes } => {
                if !(encoded && b.decode_failed.is_some()) {
                    b.main.write_at(w, offset, bytes);
                }
            }
            BodyEvent::Gap { offset, len } => {
                let target = if encoded {
                    b.raw.as_mut()
                } else {
                    Some(&mut b.main)
                };
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
    }

    /// A transaction is over: close its file and have it indexed. Returns the entry
    /// (`sha256` is filled in `index.jsonl` by the writer).
    pub fn on_done(&mut self, tx: &Transaction) -> Option<IndexEntry> {
        let Some(b) = self.open.remove(&(tx.stream, tx.number)) else {
            if tx.malformed.is_some()
                && tx
                    .response
                    .as_ref()
                    .is_some_and(|r| self.wants(r.content_type().as_deref()))
            {
                self.stats.refused += 1;
            }
            return None;
        };
        let OpenBody {
            main,
            raw,
            decode_failed,
            ..
        } = b;
        let mut notes = tx.body.notes.clone();
        let decode_error = decode_failed.or_else(|| tx.body.decode_error.clone());
        let encoded = !tx.body.codings.is_empty();
        let (mut kept, dropped) = match (encoded, decode_error, raw) {
            (true, Some(why), Some(raw)) => {
                self.stats.kept_raw += 1;
                notes.push(format!("{why}; the raw body is kept as sent"));
                (raw, Some(main))
            }
            (true, Some(why), None) => {
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
            self.writer().send(Job::Remove { id: d.id });
        }
        kept.flush(self.writer());
        let resp = tx.response.as_ref()?;
        let complete = tx.body.complete;
        let entry = IndexEntry {
            notes,
            ..self.entry(tx, kept.name.clone(), kept.len)
        };
        self.writer().send(Job::Close {
            id: kept.id,
            entry: Box::new(entry.clone()),
        });
        let mut result = entry.clone();
        if resp.status == 206
            && complete
            && !encoded
            && let Some(merged) = self.add_part(tx, &entry)
        {
            result
                .notes
                .push(format!("completed the merged file {}", merged.file));
        }
        self.last = Some(result.clone());
        Some(result)
    }

    /// Record a complete 206 part; merge when the parts cover the resource.
    fn add_part(&mut self, tx: &Transaction, entry: &IndexEntry) -> Option<IndexEntry> {
        let resp = tx.response.as_ref()?;
        let cr = ContentRange::parse(resp.head.header("content-range")?)?;
        let total = cr.complete?;
        if cr.len() != entry.size {
            return None;
        }
        let validator = resp
            .head
            .header_str("etag")
            .or_else(|| resp.head.header_str("last-modified"))
            .unwrap_or_default();
        let key = (entry.url.clone()?, validator, total);
        let parts = self.parts.entry(key.clone()).or_default();
        parts.push(Part {
            first: cr.first,
            last: cr.last,
            name: entry.file.clone(),
        });
        parts.sort_by_key(|p| (p.first, std::cmp::Reverse(p.last)));
        // Parts that cover 0..total in order, each starting inside the covered prefix.
        let mut pos = 0u64;
        let mut plan = Vec::new();
        for p in parts.iter() {
            if p.first <= pos && p.last >= pos {
                plan.push((p.name.clone(), pos - p.first, p.last + 1 - pos));
                pos = p.last + 1;
            }
        }
        if pos < total {
            return None;
        }
        self.parts.remove(&key);
        let (name, file) = match self.create(tx, "full-") {
            Ok(f) => f,
            Err((name, e)) => {
                self.creation_failed(tx, name, e);
                return None;
            }
        };
        let merged = IndexEntry {
            file: name,
            size: total,
            sha256: String::new(),
            complete: true,
            gaps: Vec::new(),
            range: None,
            content_range: Some(format!("bytes 0-{}/{total}", total - 1)),
            notes: vec![format!("merged from {} partial responses", plan.len())],
            merged_from: plan.iter().map(|p| p.0.clone()).collect(),
            ..entry.clone()
        };
        self.writer().send(Job::Merge {
            file,
            plan,
            entry: Box::new(merged.clone()),
        });
        Some(merged)
    }

    /// Close whatever is still open as incomplete, and wait until every file is written
    /// and indexed. Normally nothing is open by then: the HTTP layer's own `finish` ends
    /// every body first. Idempotent.
    pub fn finish(&mut self) {
        let mut open: Vec<((u64, u64), OpenBody)> = self.open.drain().collect();
        open.sort_by_key(|(k, _)| *k);
        let Some(active) = self.active.as_mut() else {
            return;
        };
        for (key, b) in open {
            let mut main = b.main;
            main.flush(&active.writer);
            if let Some(raw) = b.raw {
                active.writer.send(Job::Remove { id: raw.id });
            }
            let entry = IndexEntry {
                ts: b.ts,
                stream: key.0,
                transaction: key.1,
                endpoints: b.endpoints,
                method: "-".into(),
                url: None,
                status: 0,
                content_type: None,
                content_encoding: None,
                range: None,
                content_range: None,
                size: main.len,
                sha256: String::new(),
                file: main.name,
                complete: false,
                gaps: Vec::new(),
                notes: vec!["the capture stopped inside the body".into()],
                merged_from: Vec::new(),
                error: None,
            };
            active.writer.send(Job::Close {
                id: main.id,
                entry: Box::new(entry),
            });
        }
        active.writer.stop();
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

    fn http_transaction(&mut self, tx: &Transaction) {
        self.on_done(tx);
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
