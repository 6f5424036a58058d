//! The writer thread: file writes, sha256 and index lines, off the packet path.
//!
//! The extractor hands over whole buffers (never more than [`QUEUE`] of them in flight per
//! stage, so memory stays bounded). A writer thread writes them in order and passes them
//! on to a hasher thread, which computes sha256 and writes a file's index line when the
//! file is closed. Channels keep every job in order, so a merge of 206 parts runs after
//! those parts were closed.

use std::{
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

/// Buffers in flight between the extractor and the writer.
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

/// The extractor's handle on the writer thread.
pub(super) struct Writer {
    jobs: Option<SyncSender<Job>>,
    spare: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<()>>,
    /// What the writer counted (saved, incomplete, merged, bytes, write errors).
    pub(super) stats: Arc<Mutex<ExtractStats>>,
}

impl Writer {
    /// Start the thread; it owns `dir` (for removals and merges) and `index`.
    pub(super) fn start(dir: File, index: File) -> io::Result<Self> {
        let (jobs, rx) = mpsc::sync_channel(QUEUE);
        let (spare_tx, spare) = mpsc::channel();
        let stats = Arc::new(Mutex::new(ExtractStats::default()));
        let shared = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name("sniffer-writer".into())
            .spawn(move || run(&rx, &spare_tx, &dir, index, &shared))?;
        Ok(Self {
            jobs: Some(jobs),
            spare,
            handle: Some(handle),
            stats,
        })
    }

    /// Queue a job (waits while the queue is full). After [`Self::stop`], dropped.
    pub(super) fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs
            && jobs.send(job).is_err()
        {
            log::error!("the writer thread is gone; output lost");
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
        self.jobs = None;
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            log::error!("the writer thread panicked");
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

/// Stage one: writes. Stage two, its own thread: sha256 and index lines. Both see every
/// job in order; hashing and writing each take about a core at full speed.
fn run(
    rx: &Receiver<Job>,
    spare: &mpsc::Sender<Vec<u8>>,
    dir: &File,
    index: File,
    stats: &Arc<Mutex<ExtractStats>>,
) {
    let (htx, hrx) = mpsc::sync_channel(QUEUE);
    let hasher = {
        let spare = spare.clone();
        let stats = Arc::clone(stats);
        std::thread::Builder::new()
            .name("sniffer-hasher".into())
            .spawn(move || hash(&hrx, &spare, index, &stats))
    };
    let hasher = match hasher {
        Ok(h) => h,
        Err(e) => {
            log::error!("could not start the hasher thread: {e}");
            return;
        }
    };
    let mut open: HashMap<u64, Open> = HashMap::new();
    let send = |h: Hash| {
        if htx.send(h).is_err() {
            log::error!("the hasher thread is gone; index lines lost");
        }
    };
    for job in rx {
        match job {
            Job::Open { id, name, file } => {
                open.insert(
                    id,
                    Open {
                        name,
                        file,
                        error: None,
                    },
                );
                send(Hash::Open { id });
            }
            Job::Data { id, buf } => {
                if let Some(f) = open.get_mut(&id)
                    && f.error.is_none()
                    && let Err(e) = f.file.write_all(&buf)
                {
                    f.error = Some(e);
                }
                send(Hash::Data { id, buf });
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
                send(Hash::Pad { id, len });
            }
            Job::Close { id, entry } => {
                let error = open.remove(&id).and_then(|f| {
                    f.error.map(|e| {
                        log::warn!("{}: {e}", f.name);
                        format!("write failed: {e}")
                    })
                });
                send(Hash::Close { id, entry, error });
            }
            Job::Remove { id } => {
                if let Some(f) = open.remove(&id) {
                    drop(f.file);
                    if let Err(e) = remove_in(dir, &f.name) {
                        log::warn!("{}: {e}", f.name);
                    }
                }
                send(Hash::Forget { id });
            }
            Job::Merge {
                mut file,
                plan,
                mut entry,
            } => match merge(dir, &mut file, &plan) {
                Ok((len, sha)) => {
                    entry.size = len;
                    entry.sha256 = sha;
                    send(Hash::Merged { entry });
                }
                Err(e) => {
                    stats
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .write_errors += 1;
                    log::warn!("merging 206 parts into {}: {e}", entry.file);
                }
            },
            Job::Sync(reply) => send(Hash::Sync(reply)),
        }
    }
    drop(htx);
    if hasher.join().is_err() {
        log::error!("the hasher thread panicked");
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
