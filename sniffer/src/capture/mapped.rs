//! Classic pcap files read through a sliding memory map instead of `read()`.
//!
//! `read()` copies every byte from the page cache into the reader's buffer; on a capture
//! that is already cached that copy is the largest single cost of reading (0.12 s of the
//! 0.24 s it takes to read and decode 1 GB here). A mapping lets pcap-parser parse the
//! page cache in place. The mapping is a window of [`WINDOW`] bytes that slides forward
//! over the file, so memory stays flat however large the file is.
//!
//! [`MappedPcap`] implements pcap-parser's [`PcapReaderIterator`], the same interface as
//! its `LegacyPcapReader`, and parses with the same functions, so `file.rs` treats both
//! alike: damage is found and reported at the same offsets either way.
//!
//! Only regular files in classic pcap format are mapped (the format large dumps from
//! tcpdump come in). pcapng, gzip and pipes keep the buffered reader.
//!
//! A file that shrinks while it is mapped would fault (SIGBUS) on the vanished pages, as
//! with any mapped reader; the window is therefore sized from the file's length at each
//! slide, so a file that only grows (tcpdump still writing) is safe.

use std::{
    fs::File,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use memmap2::{Mmap, MmapOptions};
use pcap_parser::{
    LegacyPcapBlock, PcapBlockOwned, PcapError, PcapHeader,
    nom::{self, IResult, Offset as _},
    parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header,
    traits::PcapReaderIterator,
};

/// Bytes mapped at once (grown for a larger record).
pub(super) const WINDOW: usize = 8 << 20;

/// Mappings start on a page boundary; 4 KiB divides every page size Linux uses for files.
const PAGE: u64 = 4096;

type ParseFn = fn(&[u8]) -> IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>;

/// A classic pcap file parsed in place through a sliding window.
///
/// Invariants: `map` (when present) holds the file's bytes from `start` to
/// `start + map.len()`, and `start <= pos <= start + map.len()`; `pos` is the file offset
/// of the first unconsumed byte; `exhausted` is true when the window reached the end of
/// the file as it was when the window was placed.
pub(super) struct MappedPcap {
    file: File,
    header: PcapHeader,
    parse: ParseFn,
    map: Option<Mmap>,
    start: u64,
    pos: u64,
    window: usize,
    exhausted: bool,
    /// End of the window, for the progress bar (as `read()` counts bytes read).
    mapped_to: Arc<AtomicU64>,
    /// A failed mapping, kept for the error report (pcap-parser's error has no room).
    error: Arc<Mutex<Option<io::Error>>>,
}

impl MappedPcap {
    /// Map the start of `file` and parse its pcap header.
    ///
    /// # Errors
    /// `Ok(None)` when the file does not start with a complete classic pcap header (the
    /// caller falls back to the buffered reader, which reports why); `Err` when the
    /// mapping fails.
    pub(super) fn open(
        file: File,
        mapped_to: Arc<AtomicU64>,
        error: Arc<Mutex<Option<io::Error>>>,
    ) -> io::Result<Option<Self>> {
        let mut this = Self {
            file,
            // Replaced below, once `slide` has mapped the header.
            header: PcapHeader::new(),
            parse: parse_pcap_frame,
            map: None,
            start: 0,
            pos: 0,
            window: WINDOW,
            exhausted: false,
            mapped_to,
            error,
        };
        this.slide()?;
        let Ok((_, header)) = parse_pcap_header(this.data()) else {
            return Ok(None);
        };
        this.parse = if header.is_modified_format() {
            parse_pcap_frame_modified
        } else if header.is_bigendian() {
            parse_pcap_frame_be
        } else {
            parse_pcap_frame
        };
        this.header = header;
        Ok(Some(this))
    }

    /// The file header, as `LegacyPcapReader::next` first yields it.
    pub(super) fn header(&self) -> &PcapHeader {
        &self.header
    }

    /// Place the window at `pos` (rounded down to a page), as long as the file is now.
    fn slide(&mut self) -> io::Result<()> {
        let len = self.file.metadata()?.len();
        let start = self.pos - self.pos % PAGE;
        let size = (len.saturating_sub(start)).min(self.window as u64);
        // Unmap the old window first, so at most one is resident.
        self.map = None;
        self.start = start;
        if size > 0 {
            // SAFETY: the mapping is read-only and private to this reader, and covers
            // only bytes that exist in the file now (see the module's note on files that
            // shrink).
            let map = unsafe {
                MmapOptions::new()
                    .offset(start)
                    .len(size as usize)
                    .populate()
                    .map(&self.file)?
            };
            // The window is read front to back once.
            let _ = map.advise(memmap2::Advice::Sequential);
            self.map = Some(map);
        }
        self.exhausted = start + size >= len;
        self.mapped_to.store(start + size, Ordering::Relaxed);
        Ok(())
    }
}

impl PcapReaderIterator for MappedPcap {
    fn next(&mut self) -> Result<(usize, PcapBlockOwned<'_>), PcapError<&[u8]>> {
        let data = self.data();
        if data.is_empty() && self.exhausted {
            return Err(PcapError::Eof);
        }
        match (self.parse)(data) {
            Ok((rest, block)) => Ok((data.offset(rest), PcapBlockOwned::from(block))),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
            Err(nom::Err::Incomplete(needed)) => Err(if self.exhausted {
                PcapError::UnexpectedEof
            } else if let nom::Needed::Size(n) = needed {
                if data.len() + usize::from(n) >= self.window {
                    PcapError::BufferTooSmall
                } else {
                    PcapError::Incomplete(n.into())
                }
            } else {
                PcapError::Incomplete(0)
            }),
        }
    }

    fn consume(&mut self, offset: usize) {
        self.consume_noshift(offset);
    }

    fn consume_noshift(&mut self, offset: usize) {
        self.pos += offset as u64;
    }

    fn consumed(&self) -> usize {
        usize::try_from(self.pos).unwrap_or(usize::MAX)
    }

    fn refill(&mut self) -> Result<(), PcapError<&[u8]>> {
        self.slide().map_err(|e| {
            if let Ok(mut slot) = self.error.lock() {
                *slot = Some(e);
            }
            PcapError::ReadError
        })
    }

    fn position(&self) -> usize {
        (self.pos - self.start) as usize
    }

    fn grow(&mut self, new_size: usize) -> bool {
        // One extra page: the window starts up to a page before the record.
        self.window = self.window.max(new_size + PAGE as usize);
        true
    }

    fn data(&self) -> &[u8] {
        self.map
            .as_deref()
            .map_or(&[], |m| &m[(self.pos - self.start) as usize..])
    }

    fn reader_exhausted(&self) -> bool {
        self.exhausted
    }
}
