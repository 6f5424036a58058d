//! The file writer: JSON lines appended to a file, rotated by size like logrotate
//! (`PATH` → `PATH.1` → … → `PATH.N`, the oldest removed).
//!
//! Invariants: a line is never split across two files; the current file holds at most
//! `rotate` bytes unless a single line is longer; lines are written whenever the queue
//! runs empty (or 64 KiB have gathered), so a reader following the file sees each record
//! promptly; a line counts as sent once it is written to the file, as refused if that
//! write fails.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use tokio::sync::mpsc;

use super::{Counters, EventFile, Line, Shutdown, next};

/// Bytes gathered before they are written.
const BUF: usize = 64 << 10;

pub(super) struct Writer {
    path: PathBuf,
    rotate: Option<u64>,
    keep: u32,
    file: Option<File>,
    /// Bytes in the file, written or gathered.
    size: u64,
    /// Lines gathered and not yet written, and how many.
    buf: Vec<u8>,
    lines: usize,
    /// A write error was warned about (once).
    warned: bool,
}

fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// `PATH.n`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

impl Writer {
    /// Open (append to) the file.
    pub(super) fn open(dest: &EventFile) -> io::Result<Self> {
        let (file, size) = open(&dest.path)?;
        Ok(Self {
            path: dest.path.clone(),
            rotate: dest.rotate,
            keep: dest.keep,
            file: Some(file),
            size,
            buf: Vec::with_capacity(BUF),
            lines: 0,
            warned: false,
        })
    }

    /// Run until the queue is closed and drained.
    pub(super) fn run(
        mut self,
        mut rx: mpsc::Receiver<Line>,
        counters: &Counters,
        shutdown: &Shutdown,
    ) {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(runtime) => runtime.block_on(async {
                while let Some(line) = next(&mut rx, shutdown).await {
                    self.push(&line, counters);
                    if rx.is_empty() {
                        self.write_out(counters);
                    }
                }
            }),
            // No runtime: the blocking receive does the same job, without the deadline.
            Err(_) => {
                while let Some(line) = rx.blocking_recv() {
                    self.push(&line, counters);
                    if rx.is_empty() {
                        self.write_out(counters);
                    }
                }
            }
        }
        self.write_out(counters);
    }

    fn push(&mut self, line: &str, counters: &Counters) {
        let len = line.len() as u64 + 1;
        if let Some(limit) = self.rotate
            && self.size > 0
            && self.size + len > limit
        {
            self.write_out(counters);
            if let Err(e) = self.rotate() {
                self.warn(&e);
            }
        }
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        self.lines += 1;
        self.size += len;
        if self.buf.len() >= BUF {
            self.write_out(counters);
        }
    }

    /// Write the gathered lines; count them sent, or refused if the write fails.
    fn write_out(&mut self, counters: &Counters) {
        if self.lines == 0 {
            return;
        }
        let written = match self.file.as_mut() {
            Some(f) => f.write_all(&self.buf),
            None => Err(io::Error::other("the file is not open")),
        };
        match written {
            Ok(()) => Counters::add(&counters.sent, self.lines),
            Err(e) => {
                self.warn(&e);
                Counters::add(&counters.refused, self.lines);
            }
        }
        self.buf.clear();
        self.lines = 0;
    }

    /// Shift `PATH.k` to `PATH.k+1` (the oldest is overwritten), `PATH` to `PATH.1`, and
    /// start a new `PATH`. With `keep` 0 the old file is removed. On failure the current
    /// file stays open and is written on.
    fn rotate(&mut self) -> io::Result<()> {
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for k in (1..self.keep).rev() {
                match std::fs::rename(numbered(&self.path, k), numbered(&self.path, k + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let (file, size) = open(&self.path)?;
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    fn warn(&mut self, e: &io::Error) {
        if !self.warned {
            self.warned = true;
            log::warn!(
                "{}: {e}; events that cannot be written are dropped (counted)",
                self.path.display()
            );
        }
    }
}
