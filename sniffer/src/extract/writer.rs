//! File writes on the extractor's thread; sha256 and index lines on a hasher thread.
//!
//! The extractor hands over whole buffers. They are written to their files at once, on
//! the extractor's thread, then passed to a hasher thread (never more than [`QUEUE`] of
//! them in flight, so memory stays bounded), which computes sha256 and writes a file's
//! index line when the file is closed. The channel keeps every job in order, so a 206
//! part's index line is written before the merge's. Hashing is the largest single cost;
//! parsing plus writing about match it, so the two threads load two cores evenly (a
//! separate writer thread made three threads contend for two cores: 15% slower).

use std::{
    cell::RefCell,
    collections::HashMap,
    fs::File,
    io::{self, Read as _, Write as _},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, SyncSender},
    },
    thread::JoinHandle,
};

use sha2::{Digest as _, Sha256};

use super::{ExtractStats, IndexEntry, hex, open_in, remove_in};

/// Buffers in flight between the extractor and the hasher.
const QUEUE: usize = 32;

/// One unit of work, in order.
pub(super) enum Job {
    /// A new file, created by the extractor.
    Open { id: u64, name: String, file: File },
    /// Bytes to append.
    Data { id: u64, buf: Vec<u8> },
    /// Zero bytes to append (a gap, declared in the index).
    Pad { id: u64, len: u64 },
    /// The file is done: fill in size and sha256, write its index line.
    Close { id: u64, entry: Box<IndexEntry> },
    /// The file is not wanted after all: delete it.
    Remove { id: u64 },
    /// Copy `(part file, skip, take)` pieces into `file`, then index it.
    Merge {
        file: File,
        plan: Vec<(String, u64, u64)>,
        entry: Box<IndexEntry>,
    },
    /// Reply once everything before this job is done.
    Sync(mpsc::Sender<()>),
}

/// A file being written.
struct Open {
    name: String,
    file: File,
    error: Option<io::Error>,
}

/// The extractor's writer: files written here, hashing on the hasher thread.
pub(super) struct Writer {
    stage: RefCell<Stage>,
    hashes: Option<SyncSender<Hash>>,
    spare: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<()>>,
    /// What the writer counted (saved, incomplete, merged, bytes, write errors).
    pub(super) stats: Arc<Mutex<ExtractStats>>,
}

/// Stage one: the files being written, and the directory (for removals and merges).
struct Stage {
    open: HashMap<u64, Open>,
    dir: File,
}

impl Writer {
    /// Start the hasher thread; it owns `index`.
    pub(super) fn start(dir: File, index: File) -> io::Result<Self> {
        let (hashes, rx) = mpsc::sync_channel(QUEUE);
        let (spare_tx, spare) = mpsc::channel();
        let stats = Arc::new(Mutex::new(ExtractStats::default()));
        let shared = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name("sniffer-hasher".into())
            .spawn(move || hash(&rx, &spare_tx, index, &shared))?;
        Ok(Self {
            stage: RefCell::new(Stage {
                open: HashMap::new(),
                dir,
            }),
            hashes: Some(hashes),
            spare,
            handle: Some(handle),
            stats,
        })
    }

    /// Do a job's file work now and queue its hashing (waits while the queue is full).
    /// After [`Self::stop`], dropped.
    pub(super) fn send(&self, job: Job) {
        let Some(hashes) = &self.hashes else {
            return;
        };
        let h = self.stage.borrow_mut().run(job, &self.stats);
        if let Some(h) = h
            && hashes.send(h).is_err()
        {
            log::error!("the hasher thread is gone; index lines lost");
        }
    }

    /// An empty buffer with room, reused from the writer when one came back.
    pub(super) fn buffer(&self, capacity: usize) -> Vec<u8> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity))
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
    },
    Data {
        id: u64,
        buf: Vec<u8>,
    },
    Pad {
        id: u64,
        len: u64,
    },
    Close {
        id: u64,
        entry: Box<IndexEntry>,
        error: Option<String>,
    },
    Forget {
        id: u64,
    },
    /// A merged file, already hashed: just index it.
    Merged {
        entry: Box<IndexEntry>,
    },
    Sync(mpsc::Sender<()>),
}

impl Stage {
    /// Stage one: write, remove or merge; what the hasher gets next, in the same order.
    fn run(&mut self, job: Job, stats: &Mutex<ExtractStats>) -> Option<Hash> {
        let open = &mut self.open;
        Some(match job {
            Job::Open { id, name, file } => {
                open.insert(
                    id,
                    Open {
                        name,
                        file,
                        error: None,
                    },
                );
                Hash::Open { id }
            }
            Job::Data { id, buf } => {
                if let Some(f) = open.get_mut(&id)
                    && f.error.is_none()
                    && let Err(e) = f.file.write_all(&buf)
                {
                    f.error = Some(e);
                }
                Hash::Data { id, buf }
            }
            Job::Pad { id, len } => {
                const ZEROS: [u8; 8192] = [0; 8192];
                if let Some(f) = open.get_mut(&id) {
                    let mut left = len;
                    while left > 0 && f.error.is_none() {
                        let k = left.min(ZEROS.len() as u64) as usize;
                        if let Err(e) = f.file.write_all(&ZEROS[..k]) {
                            f.error = Some(e);
                        }
                        left -= k as u64;
                    }
                }
                Hash::Pad { id, len }
            }
            Job::Close { id, entry } => {
                let error = open.remove(&id).and_then(|f| {
                    f.error.map(|e| {
                        log::warn!("{}: {e}", f.name);
                        format!("write failed: {e}")
                    })
                });
                Hash::Close { id, entry, error }
            }
            Job::Remove { id } => {
                if let Some(f) = open.remove(&id) {
                    drop(f.file);
                    if let Err(e) = remove_in(&self.dir, &f.name) {
                        log::warn!("{}: {e}", f.name);
                    }
                }
                Hash::Forget { id }
            }
            Job::Merge {
                mut file,
                plan,
                mut entry,
            } => match merge(&self.dir, &mut file, &plan) {
                Ok((len, sha)) => {
                    entry.size = len;
                    entry.sha256 = sha;
                    Hash::Merged { entry }
                }
                Err(e) => {
                    stats
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .write_errors += 1;
                    log::warn!("merging 206 parts into {}: {e}", entry.file);
                    return None;
                }
            },
            Job::Sync(reply) => Hash::Sync(reply),
        })
    }
}

/// Stage two: hash what was written, and write each closed file's index line.
fn hash(
    rx: &Receiver<Hash>,
    spare: &mpsc::Sender<Vec<u8>>,
    mut index: File,
    stats: &Mutex<ExtractStats>,
) {
    let mut open: HashMap<u64, (Sha256, u64)> = HashMap::new();
    let mut index_line = |entry: &IndexEntry| {
        let mut line = serde_json::to_vec(entry).expect("plain data serializes");
        line.push(b'\n');
        let mut s = stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.saved += 1;
        s.bytes += entry.size;
        s.incomplete += u64::from(!entry.complete);
        if let Err(e) = index.write_all(&line) {
            s.write_errors += 1;
            log::warn!("index.jsonl: {e}");
        }
    };
    for job in rx {
        match job {
            Hash::Open { id } => {
                open.insert(id, (Sha256::new(), 0));
            }
            Hash::Data { id, mut buf } => {
                if let Some((h, len)) = open.get_mut(&id) {
                    h.update(&buf);
                    *len += buf.len() as u64;
                }
                buf.clear();
                let _ = spare.send(buf);
            }
            Hash::Pad { id, len: n } => {
                const ZEROS: [u8; 8192] = [0; 8192];
                if let Some((h, len)) = open.get_mut(&id) {
                    let mut left = n;
                    while left > 0 {
                        let k = left.min(ZEROS.len() as u64) as usize;
                        h.update(&ZEROS[..k]);
                        left -= k as u64;
                    }
                    *len += n;
                }
            }
            Hash::Close {
                id,
                mut entry,
                error,
            } => {
                let Some((h, len)) = open.remove(&id) else {
                    continue;
                };
                entry.size = len;
                entry.sha256 = hex(&h.finalize());
                if let Some(e) = error {
                    stats
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .write_errors += 1;
                    entry.notes.push(e);
                    entry.complete = false;
                }
                index_line(&entry);
            }
            Hash::Forget { id } => {
                open.remove(&id);
            }
            Hash::Merged { entry } => {
                stats
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .merged += 1;
                index_line(&entry);
            }
            Hash::Sync(reply) => {
                let _ = reply.send(());
            }
        }
    }
}

/// Copy the planned pieces of the part files into `out`; its length and sha256.
fn merge(dir: &File, out: &mut File, plan: &[(String, u64, u64)]) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    for (part, skip, take) in plan {
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
