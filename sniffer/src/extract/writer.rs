//! File writes shared between the extractor's thread and a hasher thread; sha256, the
//! final name, the disk budget and the index line on the hasher thread.
//!
//! The extractor hands over whole buffers, each with its offset in its file, to a hasher
//! thread (never more than [`QUEUE`] of them in flight, so memory stays bounded), which
//! computes sha256 and, when the file is closed, gives it its final name and writes its
//! index line. The channel keeps every job in order, so a 206 part's index line is written
//! before the merge's.
//!
//! Who writes a buffer to its file is decided per buffer, to keep both cores busy.
//! Hashing is the largest single cost, and parsing plus writing about match it, but not
//! at every moment: while the hasher keeps up (fewer than [`DELEGATE_BELOW`] jobs waiting),
//! it writes the buffer too; when it falls behind, the extractor writes before handing
//! the buffer over. Writes go to explicit offsets (`pwrite`), so their order between the
//! threads does not matter. A merge reads part files back, so it first waits for every
//! queued write. (Measured on the 1 GB bench: 0.71 s against 0.79 s with every write on
//! the extractor. A fixed share of the bytes for the hasher, and a queue that wakes
//! either side only in batches, were both slower: 0.75–0.78 s.)
//!
//! # The disk's truth
//! - A file is written as `NAME.part` and renamed to `NAME` when it is closed, whole or
//!   not; only a killed process leaves a `.part` behind.
//! - The first failed write (ENOSPC, EIO, EDQUOT, EACCES, …) stops the file. Its index line
//!   carries `error`, and its `size` and `sha256` are read back from the disk, so they
//!   describe the bytes really there; it is counted as failed, never as saved.
//! - index.jsonl gets whole lines only: a line that cannot be written whole is cut off
//!   again, and counted.
//! - With a budget ([`super::budget`]), the oldest saved files are deleted when the bytes
//!   exceed it (each deletion an `evicted` line); a file being written is never deleted,
//!   but stopped when it alone would exceed the budget. The budget can be overshot by the
//!   buffers in flight ([`QUEUE`] × 64 KiB) before the hasher sees them.
//! - With dedup, a closed file whose sha256 was saved before is replaced by a hard link
//!   to the earlier copy; it keeps its own index line.

use std::{
    cell::RefCell,
    collections::HashMap,
    ffi::CString,
    fs::File,
    io::{self, Read as _, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::fs::{FileExt as _, MetadataExt as _},
    },
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc::{self, Receiver, SyncSender},
    },
    thread::JoinHandle,
};

use sha2::{Digest as _, Sha256};

use super::{
    ExtractStats, IndexEntry, IndexHook,
    budget::{Disk, Save},
    hex, open_in, part_name,
    ranges::{Overlap, Piece},
    remove_in,
};
use crate::{
    records::{EvictedRecord, Record as _},
    wire::Timestamp,
};

/// Buffers in flight between the extractor and the hasher.
const QUEUE: usize = 32;

/// The hasher also writes a buffer while fewer than this many jobs wait for it.
const DELEGATE_BELOW: usize = 3;

/// What a gap is written and hashed as, a piece at a time.
const ZEROS: [u8; 8192] = [0; 8192];

/// The counters, also after a thread panicked while holding them.
pub(super) fn counts(stats: &Mutex<ExtractStats>) -> std::sync::MutexGuard<'_, ExtractStats> {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One unit of work, in order.
pub(super) enum Job {
    /// A new file, created by the extractor as `NAME.part` (`name` is the final name).
    Open { id: u64, name: String, file: File },
    /// Bytes to append.
    Data { id: u64, buf: Vec<u8> },
    /// Zero bytes to append (a gap, declared in the index).
    Pad { id: u64, len: u64 },
    /// The file is done: rename it, fill in size and sha256, write its index line.
    Close { id: u64, entry: Box<IndexEntry> },
    /// The file is not wanted after all: delete it.
    Remove { id: u64 },
    /// Copy the pieces (contiguous, in order) of part files into `file` (created as
    /// `NAME.part`), compare the overlaps (a disagreement is noted: the first part's
    /// bytes were used), then rename and index it.
    Merge {
        file: File,
        pieces: Vec<Piece>,
        overlaps: Vec<Overlap>,
        entry: Box<IndexEntry>,
    },
    /// A file that could not even be created: index it with its error.
    Failed {
        entry: Box<IndexEntry>,
        error: io::Error,
    },
    /// Reply once everything before this job is done.
    Sync(mpsc::Sender<()>),
}

/// What became of a closed file, told back to the extractor once its index line is out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The transaction's stream.
    pub stream: u64,
    /// The transaction's number.
    pub transaction: u64,
    /// The name the file was meant to have (the name in the entry the extractor
    /// returned for the transaction).
    pub name: String,
    /// The file's name, as indexed (its `.part` name if it could not be renamed).
    pub file: String,
    /// Why the file could not be written whole, if it could not.
    pub error: Option<String>,
}

/// A file being written, shared by both threads.
struct Shared {
    file: File,
    /// Set by the hasher when the disk budget stops the file: nobody writes to it again.
    stopped: AtomicBool,
}

/// A file being written, as stage one sees it.
struct Open {
    shared: Arc<Shared>,
    /// Where the next buffer goes.
    offset: u64,
    error: Option<io::Error>,
}

/// Settings of the writer.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Limits {
    /// Bytes the output directory may hold.
    pub budget: Option<u64>,
    /// Store a body whose sha256 was saved before as a hard link.
    pub dedup: bool,
}

/// The extractor's writer: files written here, hashing on the hasher thread.
pub(super) struct Writer {
    stage: RefCell<Stage>,
    hashes: Option<SyncSender<Hash>>,
    /// Jobs sent to the hasher and not yet taken up by it.
    backlog: Arc<AtomicUsize>,
    /// [`DELEGATE_BELOW`], except in tests.
    delegate_below: usize,
    spare: Receiver<Vec<u8>>,
    outcomes: Receiver<Outcome>,
    handle: Option<JoinHandle<()>>,
    /// What the writer counted (saved, failed, incomplete, merged, bytes, evictions).
    pub(super) stats: Arc<Mutex<ExtractStats>>,
}

/// Stage one: the files being written, and the directory (for merges).
struct Stage {
    open: HashMap<u64, Open>,
    dir: File,
}

impl Writer {
    /// Start the hasher thread; it owns `index`, `hook` (called with every index line of
    /// a file once written) and the bookkeeping of the directory's bytes, which starts
    /// from `found` (files already there, oldest first: name, size).
    pub(super) fn start(
        dir: File,
        index: File,
        limits: Limits,
        found: Vec<(String, u64)>,
        hook: Option<IndexHook>,
    ) -> io::Result<Self> {
        let (hashes, rx) = mpsc::sync_channel(QUEUE);
        let (spare_tx, spare) = mpsc::channel();
        let (outcome_tx, outcomes) = mpsc::channel();
        let stats = Arc::new(Mutex::new(ExtractStats::default()));
        let mut disk = Disk::new(limits.budget, limits.dedup);
        for (name, size) in &found {
            disk.found(name, *size);
        }
        let hasher = Hasher {
            dir: dir.try_clone()?,
            index: Index::new(index)?,
            hook,
            disk,
            open: HashMap::new(),
            stats: Arc::clone(&stats),
            outcomes: outcome_tx,
        };
        let backlog = Arc::new(AtomicUsize::new(0));
        let pending = Arc::clone(&backlog);
        let handle = std::thread::Builder::new()
            .name("sniffer-hasher".into())
            .spawn(move || hasher.run(&rx, &spare_tx, &pending))?;
        let writer = Self {
            stage: RefCell::new(Stage {
                open: HashMap::new(),
                dir,
            }),
            hashes: Some(hashes),
            backlog,
            delegate_below: DELEGATE_BELOW,
            spare,
            outcomes,
            handle: Some(handle),
            stats,
        };
        // Over budget from the start: make room now.
        writer.send_hash(Hash::Budget);
        Ok(writer)
    }

    /// Do a job's file work now and queue its hashing (waits while the queue is full).
    /// After [`Self::stop`], dropped.
    pub(super) fn send(&self, job: Job) {
        if self.hashes.is_none() {
            return;
        }
        if matches!(job, Job::Merge { .. }) {
            // The part files must be whole before they are read back.
            self.sync();
        }
        let delegate = self.backlog.load(Ordering::Relaxed) < self.delegate_below;
        let h = self.stage.borrow_mut().run(job, &self.stats, delegate);
        if let Some(h) = h {
            self.send_hash(h);
        }
    }

    fn send_hash(&self, h: Hash) {
        if let Some(hashes) = &self.hashes {
            self.backlog.fetch_add(1, Ordering::Relaxed);
            if hashes.send(h).is_err() {
                log::error!("the hasher thread is gone; index lines lost");
            }
        }
    }

    /// An empty buffer with room, reused from the writer when one came back.
    pub(super) fn buffer(&self, capacity: usize) -> Vec<u8> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity))
    }

    /// What became of the files closed so far and not yet asked about.
    pub(super) fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.try_iter().collect()
    }

    /// Wait until every queued job is done.
    pub(super) fn sync(&self) {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Sync(tx));
        let _ = rx.recv();
    }

    /// Finish every queued job and end the thread.
    pub(super) fn stop(&mut self) {
        self.hashes = None;
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            log::error!("the hasher thread panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the writer passes on to the hasher, in the same order.
enum Hash {
    Open {
        id: u64,
        name: String,
        shared: Arc<Shared>,
    },
    Data {
        id: u64,
        buf: Vec<u8>,
        /// The hasher writes the buffer here first.
        write: Option<u64>,
    },
    Pad {
        id: u64,
        len: u64,
    },
    Close {
        id: u64,
        entry: Box<IndexEntry>,
        /// The first write error met by the extractor.
        error: Option<io::Error>,
    },
    Remove {
        id: u64,
    },
    /// A merged file, already hashed: rename and index it.
    Merged {
        entry: Box<IndexEntry>,
    },
    Failed {
        entry: Box<IndexEntry>,
        error: io::Error,
    },
    /// Evict what the budget requires now.
    Budget,
    Sync(mpsc::Sender<()>),
}

impl Stage {
    /// Stage one: write (unless `delegate`: then the hasher writes), or merge; what the
    /// hasher gets next, in the same order.
    fn run(&mut self, job: Job, stats: &Mutex<ExtractStats>, delegate: bool) -> Option<Hash> {
        let open = &mut self.open;
        Some(match job {
            Job::Open { id, name, file } => {
                let shared = Arc::new(Shared {
                    file,
                    stopped: AtomicBool::new(false),
                });
                open.insert(
                    id,
                    Open {
                        shared: Arc::clone(&shared),
                        offset: 0,
                        error: None,
                    },
                );
                Hash::Open { id, name, shared }
            }
            Job::Data { id, buf } => {
                let mut write = None;
                if let Some(f) = open.get_mut(&id) {
                    if f.error.is_some() || f.shared.stopped.load(Ordering::Relaxed) {
                        // Stopped: nothing more goes to this file.
                        return None;
                    }
                    let at = f.offset;
                    f.offset += buf.len() as u64;
                    if delegate {
                        write = Some(at);
                    } else if let Err(e) = f.shared.file.write_all_at(&buf, at) {
                        f.error = Some(e);
                    }
                }
                Hash::Data { id, buf, write }
            }
            Job::Pad { id, len } => {
                if let Some(f) = open.get_mut(&id) {
                    let mut left = len;
                    while left > 0 && f.error.is_none() && !f.shared.stopped.load(Ordering::Relaxed)
                    {
                        let k = left.min(ZEROS.len() as u64) as usize;
                        if let Err(e) = f.shared.file.write_all_at(&ZEROS[..k], f.offset) {
                            f.error = Some(e);
                        }
                        f.offset += k as u64;
                        left -= k as u64;
                    }
                }
                Hash::Pad { id, len }
            }
            Job::Close { id, entry } => {
                let error = open.remove(&id).and_then(|f| f.error);
                Hash::Close { id, entry, error }
            }
            Job::Remove { id } => {
                open.remove(&id);
                Hash::Remove { id }
            }
            Job::Merge {
                mut file,
                pieces,
                overlaps,
                mut entry,
            } => match merge(&self.dir, &mut file, &pieces) {
                Ok((len, sha)) => {
                    entry.size = len;
                    entry.sha256 = sha;
                    entry.notes.extend(compare_overlaps(&self.dir, &overlaps));
                    Hash::Merged { entry }
                }
                Err(e) => {
                    counts(stats).failed += 1;
                    log::warn!("merging 206 parts into {}: {e}", entry.file);
                    let _ = remove_in(&self.dir, &part_name(&entry.file));
                    return None;
                }
            },
            Job::Failed { entry, error } => Hash::Failed { entry, error },
            Job::Sync(reply) => Hash::Sync(reply),
        })
    }
}

/// index.jsonl: whole lines only.
struct Index {
    file: File,
    /// Bytes of whole lines written.
    len: u64,
}

impl Index {
    fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }

    /// Append one line; a line that cannot be written whole is cut off again.
    fn line(&mut self, mut line: Vec<u8>) -> io::Result<()> {
        line.push(b'\n');
        match self.file.write_all(&line) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

/// A file being hashed.
struct Hashing {
    name: String,
    shared: Arc<Shared>,
    sha: Sha256,
    /// Bytes hashed (and counted against the budget).
    len: u64,
    /// The first error of a write done here.
    error: Option<io::Error>,
    /// Stopped by the budget.
    stopped: bool,
}

/// Stage two: hash what was written; name, budget and index each closed file.
struct Hasher {
    dir: File,
    index: Index,
    hook: Option<IndexHook>,
    disk: Disk,
    open: HashMap<u64, Hashing>,
    stats: Arc<Mutex<ExtractStats>>,
    outcomes: mpsc::Sender<Outcome>,
}

impl Hasher {
    fn run(mut self, rx: &Receiver<Hash>, spare: &mpsc::Sender<Vec<u8>>, backlog: &AtomicUsize) {
        for job in rx {
            backlog.fetch_sub(1, Ordering::Relaxed);
            match job {
                Hash::Open { id, name, shared } => {
                    self.open.insert(
                        id,
                        Hashing {
                            name,
                            shared,
                            sha: Sha256::new(),
                            len: 0,
                            error: None,
                            stopped: false,
                        },
                    );
                }
                Hash::Data { id, mut buf, write } => {
                    self.data(id, &buf, write);
                    buf.clear();
                    let _ = spare.send(buf);
                }
                Hash::Pad { id, len } => self.pad(id, len),
                Hash::Close { id, entry, error } => self.close(id, entry, error),
                Hash::Remove { id } => {
                    if let Some(h) = self.open.remove(&id) {
                        self.disk.dropped(h.len);
                        if let Err(e) = remove_in(&self.dir, &part_name(&h.name)) {
                            log::warn!("{}: {e}", part_name(&h.name));
                        }
                    }
                }
                Hash::Merged { entry } => self.merged(entry),
                Hash::Failed { entry, error } => self.failed(entry, &error),
                Hash::Budget => self.make_room(None),
                Hash::Sync(reply) => {
                    let _ = reply.send(());
                }
            }
        }
    }

    fn data(&mut self, id: u64, buf: &[u8], write: Option<u64>) {
        let Some(h) = self.open.get_mut(&id) else {
            return;
        };
        if h.stopped {
            return;
        }
        if let Some(at) = write
            && h.error.is_none()
            && let Err(e) = h.shared.file.write_all_at(buf, at)
        {
            h.error = Some(e);
        }
        h.sha.update(buf);
        h.len += buf.len() as u64;
        self.disk.grew(buf.len() as u64);
        self.make_room(Some(id));
    }

    fn pad(&mut self, id: u64, n: u64) {
        let Some(h) = self.open.get_mut(&id) else {
            return;
        };
        if h.stopped {
            return;
        }
        let mut left = n;
        while left > 0 {
            let k = left.min(ZEROS.len() as u64) as usize;
            h.sha.update(&ZEROS[..k]);
            left -= k as u64;
        }
        h.len += n;
        self.disk.grew(n);
        self.make_room(Some(id));
    }

    /// Over the budget: delete the oldest saved files; if that is not enough, stop the
    /// file `growing` (the one that just grew).
    fn make_room(&mut self, growing: Option<u64>) {
        while let Some((saved, freed)) = self.disk.evict() {
            let removed = remove_in(&self.dir, &saved.name);
            let mut s = counts(&self.stats);
            s.evicted += 1;
            s.evicted_bytes += freed;
            drop(s);
            let reason = match &removed {
                Ok(()) => format!(
                    "disk budget of {} bytes reached: the oldest file goes first",
                    self.disk.budget().unwrap_or_default()
                ),
                Err(e) => format!("disk budget reached, but deleting it failed: {e}"),
            };
            let record = EvictedRecord {
                ts: now(),
                file: saved.name,
                size: saved.size,
                sha256: saved.sha256,
                reason,
            };
            self.index_line(record.to_json().into_bytes());
        }
        if self.disk.over()
            && let Some(id) = growing
            && let Some(h) = self.open.get_mut(&id)
            && !h.stopped
        {
            h.stopped = true;
            h.shared.stopped.store(true, Ordering::Relaxed);
        }
    }

    fn index_line(&mut self, line: Vec<u8>) {
        if let Err(e) = self.index.line(line) {
            let mut s = counts(&self.stats);
            if s.index_errors == 0 {
                log::warn!("index.jsonl: {e}");
            }
            s.index_errors += 1;
        }
    }

    fn close(&mut self, id: u64, mut entry: Box<IndexEntry>, error: Option<io::Error>) {
        let Some(h) = self.open.remove(&id) else {
            return;
        };
        // A write error from either thread: the extractor's came first if both.
        let error = error.or(h.error);
        let (len, sha) = if error.is_some() || h.stopped {
            // What is really on disk, not what was meant to be.
            match read_back(&h.shared.file) {
                Ok(r) => r,
                Err(e) => {
                    log::warn!("{}: reading back: {e}", h.name);
                    (0, hex(&Sha256::digest(b"")))
                }
            }
        } else {
            (h.len, hex(&h.sha.finalize()))
        };
        self.disk.dropped(h.len);
        entry.size = len;
        entry.sha256 = sha;
        if h.stopped {
            entry.complete = false;
            entry.notes.push(format!(
                "the disk budget of {} bytes was reached: the file holds the first {len} bytes",
                self.disk.budget().unwrap_or_default()
            ));
            counts(&self.stats).over_budget += 1;
        }
        drop(h.shared);
        let name = entry.file.clone();
        if let Err(e) = rename_in(&self.dir, &part_name(&name), &name) {
            // Keep it under its .part name, and say so.
            entry.file = part_name(&name);
            entry
                .notes
                .push(format!("could not be renamed to {name}: {e}"));
        }
        if let Some(e) = error {
            log::warn!(
                "{}: write failed: {e}; the file holds {len} bytes",
                entry.file
            );
            entry.complete = false;
            entry.error = Some(e.to_string());
            self.disk.found(&entry.file, len);
        } else if let Save::LinkTo(first) = self.disk.store(&entry.file, len, Some(&entry.sha256)) {
            match relink(&self.dir, &first, &entry.file) {
                Ok(()) => {
                    counts(&self.stats).deduplicated += 1;
                    entry
                        .notes
                        .push(format!("stored once: a hard link to {first}"));
                }
                Err(e) => entry.notes.push(format!(
                    "a copy of {first}, kept apart: linking failed: {e}"
                )),
            }
        }
        self.indexed(&entry, &name);
    }

    fn merged(&mut self, mut entry: Box<IndexEntry>) {
        let name = entry.file.clone();
        if let Err(e) = rename_in(&self.dir, &part_name(&name), &name) {
            entry.file = part_name(&name);
            entry
                .notes
                .push(format!("could not be renamed to {name}: {e}"));
        }
        self.disk.store(&entry.file, entry.size, None);
        counts(&self.stats).merged += 1;
        self.indexed(&entry, &name);
        self.make_room(None);
    }

    fn failed(&mut self, mut entry: Box<IndexEntry>, error: &io::Error) {
        entry.size = 0;
        entry.sha256 = hex(&Sha256::digest(b""));
        entry.complete = false;
        entry.error = Some(error.to_string());
        let name = entry.file.clone();
        self.indexed(&entry, &name);
    }

    /// Write a file's index line, count it, and tell the extractor.
    fn indexed(&mut self, entry: &IndexEntry, name: &str) {
        {
            let mut s = counts(&self.stats);
            if entry.error.is_some() {
                s.failed += 1;
            } else {
                s.saved += 1;
                s.bytes += entry.size;
                s.incomplete += u64::from(!entry.complete);
            }
        }
        self.index_line(entry.to_json().into_bytes());
        if let Some(hook) = self.hook.as_mut() {
            hook(entry);
        }
        if !entry.merged_from.is_empty() {
            // A merged file answers no single transaction.
            return;
        }
        let _ = self.outcomes.send(Outcome {
            stream: entry.stream,
            transaction: entry.transaction,
            name: name.to_owned(),
            file: entry.file.clone(),
            error: entry.error.clone(),
        });
    }
}

/// The time now, for records about what this run did (not about packets).
fn now() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(Timestamp(0), |d| Timestamp(d.as_nanos() as u64))
}

/// Length and sha256 of what `file` holds.
fn read_back(file: &File) -> io::Result<(u64, String)> {
    let len = file.metadata()?.size();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < len {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok((at, hex(&hasher.finalize())))
}

fn cstr(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(io::Error::other)
}

/// `renameat2(dir, from, dir, to, RENAME_NOREPLACE)`: never overwrites.
fn rename_in(dir: &File, from: &str, to: &str) -> io::Result<()> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both strings are valid and NUL-terminated, `dir` is an open directory for the
    // duration of the call.
    let r = unsafe {
        libc::renameat2(
            dir.as_raw_fd(),
            f.as_ptr(),
            dir.as_raw_fd(),
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replace `name` by a hard link to `target` (both in `dir`).
fn relink(dir: &File, target: &str, name: &str) -> io::Result<()> {
    let tmp = format!("{name}.link");
    let (t, l) = (cstr(target)?, cstr(&tmp)?);
    // SAFETY: as in `rename_in`; flags 0: do not follow a symlink at `target`.
    if unsafe { libc::linkat(dir.as_raw_fd(), t.as_ptr(), dir.as_raw_fd(), l.as_ptr(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let (l, n) = (cstr(&tmp)?, cstr(name)?);
    // SAFETY: as above. A plain renameat replaces `name` atomically.
    if unsafe { libc::renameat(dir.as_raw_fd(), l.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } < 0 {
        let e = io::Error::last_os_error();
        let _ = remove_in(dir, &tmp);
        return Err(e);
    }
    Ok(())
}

/// Copy the planned pieces of the part files into `out`; its length and sha256.
fn merge(dir: &File, out: &mut File, pieces: &[Piece]) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    for Piece {
        name: part,
        skip,
        take,
        ..
    } in pieces
    {
        let f = open_in(dir, part)?;
        let mut r = io::BufReader::new(f).take(skip + take);
        io::copy(&mut (&mut r).take(*skip), &mut io::sink())?;
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            hasher.update(&buf[..n]);
            len += n as u64;
        }
    }
    Ok((len, hex(&hasher.finalize())))
}

/// Notes on the overlaps whose two parts disagree (or could not be read back).
fn compare_overlaps(dir: &File, overlaps: &[Overlap]) -> Vec<String> {
    let mut notes = Vec::new();
    for o in overlaps {
        let read = |(name, at): &(String, u64)| -> io::Result<Vec<u8>> {
            let f = open_in(dir, name)?;
            let mut buf = vec![0u8; usize::try_from(o.len).unwrap_or(usize::MAX).min(1 << 20)];
            let mut got = 0;
            while got < buf.len() {
                let n = f.read_at(&mut buf[got..], at + got as u64)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            Ok(buf)
        };
        let end = o.at + o.len - 1;
        match (read(&o.kept), read(&o.other)) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(a), Ok(b)) => {
                let first = a
                    .iter()
                    .zip(&b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                notes.push(format!(
                    "parts {} and {} disagree on bytes {}-{end} (first difference at byte {}): \
                     {}'s bytes were kept (first saved wins)",
                    o.kept.0,
                    o.other.0,
                    o.at,
                    o.at + first as u64,
                    o.kept.0
                ));
            }
            (Err(e), _) | (_, Err(e)) => notes.push(format!(
                "bytes {}-{end} of parts {} and {} could not be compared: {e}",
                o.at, o.kept.0, o.other.0
            )),
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{records::Endpoints, wire::Timestamp};

    fn entry(file: &str) -> Box<IndexEntry> {
        Box::new(IndexEntry {
            ts: Timestamp(0),
            stream: 0,
            transaction: 1,
            endpoints: Endpoints::new(
                "10.0.0.1:5000".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
            ),
            community_id: String::new(),
            method: "GET".into(),
            url: None,
            dir: crate::wire::Direction::Resp,
            status: Some(200),
            content_type: None,
            detected_type: None,
            content_encoding: None,
            range: None,
            content_range: None,
            size: 0,
            sha256: String::new(),
            file: file.into(),
            complete: true,
            gaps: Vec::new(),
            notes: Vec::new(),
            part: None,
            merged_from: Vec::new(),
            error: None,
            icy: None,
            hls: None,
        })
    }

    fn start(dir: &std::path::Path, limits: Limits) -> Writer {
        let open_dir = File::open(dir).unwrap();
        let index = File::create(dir.join("index.jsonl")).unwrap();
        Writer::start(open_dir, index, limits, Vec::new(), None).unwrap()
    }

    fn index(dir: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("index.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn issue5_both_threads_write_at_offsets_and_a_failed_write_is_declared() {
        // Never delegated, always delegated: the same file and hash. A file that cannot be
        // written (opened read-only here) is indexed with its error and the bytes really
        // on disk, whichever thread met it; nothing is silently lost.
        for delegate_below in [0, usize::MAX] {
            let dir = tempfile::tempdir().unwrap();
            let mut w = start(dir.path(), Limits::default());
            w.delegate_below = delegate_below;
            let good = File::create(dir.path().join("good.part")).unwrap();
            std::fs::write(dir.path().join("bad.part"), b"xy").unwrap();
            let bad = File::open(dir.path().join("bad.part")).unwrap();
            w.send(Job::Open {
                id: 1,
                name: "good".into(),
                file: good,
            });
            w.send(Job::Open {
                id: 2,
                name: "bad".into(),
                file: bad,
            });
            let mut want = Vec::new();
            for i in 0..40u8 {
                let buf = vec![i; 1000 + usize::from(i)];
                want.extend_from_slice(&buf);
                w.send(Job::Data {
                    id: 1,
                    buf: buf.clone(),
                });
                w.send(Job::Data { id: 2, buf });
                if i == 20 {
                    w.send(Job::Pad { id: 1, len: 5000 });
                    want.extend_from_slice(&[0; 5000]);
                }
            }
            w.send(Job::Close {
                id: 1,
                entry: entry("good"),
            });
            w.send(Job::Close {
                id: 2,
                entry: entry("bad"),
            });
            let outcomes = {
                w.sync();
                w.outcomes()
            };
            w.stop();

            let got = std::fs::read(dir.path().join("good")).unwrap();
            assert!(got == want, "delegate_below {delegate_below}: file differs");
            assert!(!dir.path().join("good.part").exists(), "renamed");
            let lines = index(dir.path());
            assert_eq!(lines.len(), 2, "{lines:?}");
            assert_eq!(lines[0]["sha256"], hex(&Sha256::digest(&want)));
            assert_eq!(lines[0]["size"], want.len() as u64);
            assert_eq!(lines[0]["complete"], true);
            assert_eq!(lines[0]["error"], serde_json::Value::Null);
            assert_eq!(lines[1]["file"], "bad");
            assert_eq!(lines[1]["complete"], false);
            assert!(lines[1]["error"].as_str().is_some(), "{lines:?}");
            // What is on disk: the two bytes it held, not the 41,000 meant for it.
            assert_eq!(lines[1]["size"], 2);
            assert_eq!(lines[1]["sha256"], hex(&Sha256::digest(b"xy")));
            let s = counts(&w.stats).clone();
            assert_eq!((s.saved, s.failed), (1, 1));
            assert_eq!(outcomes.len(), 2);
            assert!(outcomes[0].error.is_none() && outcomes[1].error.is_some());
        }
    }

    #[test]
    fn issue12_budget_evicts_the_oldest_and_stops_a_file_that_alone_exceeds_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = start(
            dir.path(),
            Limits {
                budget: Some(10_000),
                dedup: false,
            },
        );
        w.delegate_below = 0;
        let file = |n: &str| {
            let path = dir.path().join(format!("{n}.part"));
            File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
                .unwrap()
        };
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            w.send(Job::Open {
                id,
                name: name.into(),
                file: file(name),
            });
            w.send(Job::Data {
                id,
                buf: vec![id as u8; 4000],
            });
            w.send(Job::Close {
                id,
                entry: entry(name),
            });
        }
        // a + b + c = 12,000 > 10,000: a went.
        w.sync();
        assert!(!dir.path().join("a").exists());
        assert!(dir.path().join("b").exists() && dir.path().join("c").exists());
        // One file alone larger than the budget: b and c go, and it is stopped.
        w.send(Job::Open {
            id: 4,
            name: "big".into(),
            file: file("big"),
        });
        for _ in 0..20 {
            w.send(Job::Data {
                id: 4,
                buf: vec![4; 1000],
            });
            // In step with the hasher, so the stop is seen at once (otherwise the budget
            // may be overshot by the buffers in flight).
            w.sync();
        }
        w.send(Job::Close {
            id: 4,
            entry: entry("big"),
        });
        w.stop();
        let lines = index(dir.path());
        let kinds: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l["type"].as_str().unwrap(), l["file"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("file", "a"),
                ("file", "b"),
                ("evicted", "a"),
                ("file", "c"),
                ("evicted", "b"),
                ("evicted", "c"),
                ("file", "big"),
            ]
        );
        let big = lines.last().unwrap();
        assert_eq!(big["complete"], false);
        let on_disk = std::fs::read(dir.path().join("big")).unwrap();
        assert_eq!(big["size"], on_disk.len() as u64);
        assert_eq!(big["sha256"], hex(&Sha256::digest(&on_disk)));
        assert!(on_disk.len() <= 11_000, "{}", on_disk.len());
        let s = counts(&w.stats).clone();
        assert_eq!((s.evicted, s.over_budget), (3, 1));
    }

    #[test]
    fn issue12_dedup_stores_a_copy_once_as_a_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = start(
            dir.path(),
            Limits {
                budget: None,
                dedup: true,
            },
        );
        for (id, name, byte) in [(1, "a", 7u8), (2, "b", 7), (3, "c", 8)] {
            w.send(Job::Open {
                id,
                name: name.into(),
                file: File::create(dir.path().join(format!("{name}.part"))).unwrap(),
            });
            w.send(Job::Data {
                id,
                buf: vec![byte; 3000],
            });
            w.send(Job::Close {
                id,
                entry: entry(name),
            });
        }
        w.stop();
        let ino = |n: &str| std::fs::metadata(dir.path().join(n)).unwrap().ino();
        assert_eq!(ino("a"), ino("b"));
        assert_ne!(ino("a"), ino("c"));
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), vec![7; 3000]);
        let lines = index(dir.path());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["sha256"], lines[1]["sha256"]);
        assert_eq!(counts(&w.stats).deduplicated, 1);
    }

    #[test]
    fn issue12_an_index_line_is_whole_or_absent() {
        let dir = tempfile::tempdir().unwrap();
        // /dev/full fails every write with ENOSPC.
        let full = File::options().append(true).open("/dev/full").unwrap();
        let mut index = Index::new(full).unwrap();
        assert!(index.line(b"{}".to_vec()).is_err());
        let f = File::create(dir.path().join("i")).unwrap();
        let mut index = Index::new(f).unwrap();
        index.line(b"{\"a\":1}".to_vec()).unwrap();
        assert_eq!(index.len, 8);
    }
}
