//! Saving HTTP bodies as files: MIME filter, safe names, streaming writes, index.jsonl.
//!
//! [`Extractor`] is an [`HttpListener`]. For each response whose media type matches a
//! glob (or every response with `all`), it creates a file in the output directory when
//! the head arrives and writes the body as it streams by, so memory does not grow with
//! the body. When the transaction is over it appends one line to `DIR/index.jsonl`
//! ([`IndexEntry`]).
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

use writer::{Job, Writer};

use crate::{
    http::{BodyEvent, ContentRange, HttpListener, Transaction, parser::Framing},
    records::{Endpoints, FileRecord},
    wire::{Timestamp, community_id},
};

/// What to save, and where.
#[derive(Clone, Debug)]
pub struct ExtractConfig {
    /// Output directory (created if missing).
    pub dir: PathBuf,
    /// Media types to save (lower-case globs such as `audio/*`).
    pub globs: Vec<glob::Pattern>,
    /// Save every body whatever its type.
    pub all: bool,
    /// The Community ID seed of the index lines (`0` unless agreed otherwise).
    pub community_id_seed: u16,
}

/// Why extraction could not start or a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
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
    /// Files that could not be created or written.
    pub write_errors: u64,
    /// Bytes written to saved files.
    pub bytes: u64,
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
    dir: File,
    writer: Writer,
    next_id: u64,
    open: HashMap<(u64, u64), OpenBody, foldhash::fast::RandomState>,
    /// 206 parts by (URL, validator, complete length).
    parts: HashMap<(String, String, u64), Vec<Part>>,
    /// Counted here: kept_raw, refused, and files that could not be created.
    stats: ExtractStats,
    last: Option<IndexEntry>,
}

/// Bytes gathered per file before they are written (and handed to the hasher thread).
const BUF: usize = 64 * 1024;

/// `openat(dir, name)` creating a new file: never follows a symlink, never overwrites.
fn create_in(dir: &File, name: &str, append: bool) -> io::Result<File> {
    if !naming::is_safe(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unsafe file name {name:?}"),
        ));
    }
    let c = CString::new(name).map_err(io::Error::other)?;
    let flags = libc::O_WRONLY
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
    /// Create (if needed) and open the output directory and its `index.jsonl`, and start
    /// the hasher thread.
    ///
    /// # Errors
    /// The directory or the index cannot be created or opened.
    pub fn new(config: ExtractConfig) -> Result<Self, ExtractError> {
        Self::with_index_hook(config, None)
    }

    /// As [`Self::new`], with `hook` called for every index line once it is written.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_index_hook(
        config: ExtractConfig,
        hook: Option<IndexHook>,
    ) -> Result<Self, ExtractError> {
        let dir_err = |source| ExtractError::Dir {
            dir: config.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(dir_err)?;
        let dir = File::open(&config.dir).map_err(dir_err)?;
        if !dir.metadata().map_err(dir_err)?.is_dir() {
            return Err(dir_err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        let index_err = |source| ExtractError::File {
            dir: config.dir.clone(),
            name: "index.jsonl".into(),
            source,
        };
        let index = create_in(&dir, "index.jsonl", true).map_err(index_err)?;
        let writer =
            Writer::start(dir.try_clone().map_err(dir_err)?, index, hook).map_err(dir_err)?;
        Ok(Self {
            config,
            dir,
            writer,
            next_id: 0,
            open: HashMap::default(),
            parts: HashMap::new(),
            stats: ExtractStats::default(),
            last: None,
        })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// What was counted so far (final after [`Self::finish`]).
    pub fn stats(&self) -> ExtractStats {
        let w = writer::counts(&self.writer.stats).clone();
        ExtractStats {
            write_errors: w.write_errors + self.stats.write_errors,
            kept_raw: self.stats.kept_raw,
            refused: self.stats.refused,
            ..w
        }
    }

    /// Wait until everything handed over so far is written and indexed.
    pub fn sync(&self) {
        self.writer.sync();
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

    fn create(&self, tx: &Transaction, prefix: &str) -> Result<(String, File), ExtractError> {
        let uri = tx.request.as_ref().map_or(&b""[..], |r| &r.uri);
        let ct = tx.response.as_ref().and_then(|r| r.content_type());
        let mut last_err = None;
        for attempt in 0..1000 {
            let name = format!(
                "{prefix}{}",
                naming::file_name(tx.stream, tx.number, uri, ct.as_deref(), attempt)
            );
            match create_in(&self.dir, &name, false) {
                Ok(f) => return Ok((name, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some((name, e)),
                Err(e) => {
                    return Err(ExtractError::File {
                        dir: self.config.dir.clone(),
                        name,
                        source: e,
                    });
                }
            }
        }
        let (name, source) = last_err.expect("1000 attempts");
        Err(ExtractError::File {
            dir: self.config.dir.clone(),
            name,
            source,
        })
    }

    fn sink(&mut self, tx: &Transaction, prefix: &str) -> Result<Sink, ExtractError> {
        let (name, file) = self.create(tx, prefix)?;
        let id = self.next_id;
        self.next_id += 1;
        self.writer.send(Job::Open {
            id,
            name: name.clone(),
            file,
        });
        Ok(Sink {
            id,
            name,
            len: 0,
            buf: self.writer.buffer(BUF),
        })
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
            Err(e) => {
                log::warn!("not saved: {e}");
                self.stats.write_errors += 1;
                return false;
            }
        };
        let raw = if tx.body.codings.is_empty() {
            None
        } else {
            match self.sink(tx, "raw-") {
                Ok(s) => Some(s),
                Err(e) => {
                    log::warn!("raw copy not kept: {e}");
                    self.stats.write_errors += 1;
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
        let w = &self.writer;
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
            self.writer.send(Job::Remove { id: d.id });
        }
        kept.flush(&self.writer);
        let resp = tx.response.as_ref()?;
        let complete = tx.body.complete;
        let entry = IndexEntry {
            ts: resp.ts,
            stream: tx.stream,
            transaction: tx.number,
            endpoints: Endpoints::new(tx.client, tx.server),
            community_id: community_id(self.config.community_id_seed, tx.client, tx.server),
            method: tx.method().to_owned(),
            url: tx.url(),
            status: resp.status,
            content_type: resp.content_type(),
            content_encoding: resp.head.header_str("content-encoding"),
            range: tx.request.as_ref().and_then(|r| r.head.header_str("range")),
            content_range: resp.head.header_str("content-range"),
            size: kept.len,
            sha256: String::new(),
            file: kept.name.clone(),
            complete,
            gaps: if complete {
                Vec::new()
            } else {
                tx.body.gaps.clone()
            },
            notes,
            merged_from: Vec::new(),
        };
        self.writer.send(Job::Close {
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
            Err(e) => {
                self.stats.write_errors += 1;
                log::warn!("merging 206 parts: {e}");
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
        self.writer.send(Job::Merge {
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
        for (key, b) in open {
            let mut main = b.main;
            main.flush(&self.writer);
            if let Some(raw) = b.raw {
                self.writer.send(Job::Remove { id: raw.id });
            }
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
            };
            self.writer.send(Job::Close {
                id: main.id,
                entry: Box::new(entry),
            });
        }
        self.writer.stop();
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
