//! A push-based, streaming MIME multipart parser (RFC 2046 §5.1), as used by
//! `multipart/form-data` (RFC 7578) and `multipart/byteranges` (RFC 9110 §14.6).
//!
//! [`boundary`] reads the boundary from a `Content-Type` value; a [`Parser`] is then fed
//! the (decoded) body in pieces of any size, and calls back with [`Event`]s: a part's
//! head ([`PartHead`]), its data in order, and its end. Nothing is ever buffered beyond
//! what is needed to recognise a delimiter split over two pieces, and one part head (at
//! most [`Limits::max_head_bytes`]), so memory does not grow with the body.
//!
//! It never fails: whatever is wrong (no boundary, a head that does not parse, a capture
//! gap, a missing final boundary, too many parts) becomes a note ([`Parser::notes`])
//! saying what and where, and parsing goes on at the next boundary.
//!
//! Grammar, as recognised here (RFC 2046 with the leniencies real clients need):
//! - a delimiter is `CRLF "--" boundary` or `LF "--" boundary` (bare LF line ends are
//!   accepted everywhere); the first one may also stand at the very start of the body
//!   without a line end. The line end before `--` belongs to the delimiter, not to the
//!   data of the part before it.
//! - `--boundary` counts as a delimiter only when followed by `--` (the close delimiter),
//!   a space, tab, CR or LF, or the end of the body; `--boundaryX` or `--boundary-X` are
//!   data. This is decided from at most two bytes after the boundary.
//! - after a delimiter, transport padding (spaces and tabs) and the line end (CRLF or LF)
//!   are skipped; other bytes on that line are skipped with a note.
//! - a part is a head (header lines up to an empty line) and data. A head that is followed
//!   directly by the next delimiter, at a line start, is complete and the part empty
//!   (`Content-Type: x CRLF` + `CRLF--boundary`). Header lines may be folded (a line
//!   starting with space or tab continues the field before it).
//! - everything before the first delimiter (the preamble) and after the close delimiter
//!   (the epilogue) is ignored.
//!
//! ```
//! use sniffer::extract::multipart::{Event, Limits, Parser, boundary};
//!
//! let b = boundary(b"multipart/form-data; boundary=XyZ").unwrap();
//! let mut parser = Parser::new(&b, Limits::default());
//! let mut data = Vec::new();
//! let mut on = |event: Event<'_>| {
//!     if let Event::Data(bytes) = event {
//!         data.extend_from_slice(bytes);
//!     }
//! };
//! parser.feed(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhel", &mut on);
//! parser.feed(b"lo\r\n--XyZ--\r\n", &mut on);
//! parser.finish(&mut on);
//! assert_eq!(data, b"hello");
//! assert!(parser.complete());
//! ```

use std::mem;

use memchr::memmem;

/// Parts announced at most, by default ([`Limits::max_parts`]).
pub const DEFAULT_MAX_PARTS: u64 = 10_000;

/// Longest part head, by default ([`Limits::max_head_bytes`]).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;

/// Longest boundary allowed by RFC 2046.
pub const MAX_BOUNDARY: usize = 70;

/// Notes kept; later ones are only counted (one last note says how many).
const MAX_NOTES: usize = 100;

/// Longest quote of the input in an error or note.
const MAX_QUOTE: usize = 80;

/// What went wrong reading a boundary or a part head.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The Content-Type has no `boundary` parameter.
    #[error("no boundary parameter in Content-Type {content_type:?}")]
    NoBoundary {
        /// The Content-Type value (lossy, shortened).
        content_type: String,
    },
    /// The `boundary` parameter is empty.
    #[error("empty boundary parameter in Content-Type {content_type:?}")]
    EmptyBoundary {
        /// The Content-Type value (lossy, shortened).
        content_type: String,
    },
    /// The `boundary` parameter is longer than RFC 2046 allows.
    #[error(
        "boundary of {len} bytes in Content-Type {content_type:?} is longer than the {MAX_BOUNDARY} allowed (RFC 2046)"
    )]
    BoundaryTooLong {
        /// Its length in bytes.
        len: usize,
        /// The Content-Type value (lossy, shortened).
        content_type: String,
    },
    /// A line of a part head has no colon.
    #[error("line {line} of the head has no colon: {text:?}")]
    NoColon {
        /// Line number in the head, from 1.
        line: usize,
        /// The line (lossy, shortened).
        text: String,
    },
    /// A line of a part head has an empty or invalid field name.
    #[error("line {line} of the head has an invalid field name: {text:?}")]
    BadName {
        /// Line number in the head, from 1.
        line: usize,
        /// The line (lossy, shortened).
        text: String,
    },
    /// The first line of a part head is a continuation (starts with space or tab).
    #[error("line {line} of the head continues a field that does not exist")]
    Continuation {
        /// Line number in the head, from 1.
        line: usize,
    },
}

/// The boundary parameter of a multipart Content-Type value (raw header bytes), e.g.
/// from `multipart/form-data; boundary="----abc"`: unquoted, case kept.
///
/// Errors: no boundary parameter, an empty one, or one longer than 70 bytes (the RFC 2046
/// limit), each with the Content-Type value quoted.
pub fn boundary(content_type: &[u8]) -> Result<Vec<u8>, MultipartError> {
    let quoted = || quote(content_type);
    let value = params(content_type)
        .into_iter()
        .find(|(name, _)| name == "boundary")
        .map(|(_, value)| value)
        .ok_or_else(|| MultipartError::NoBoundary {
            content_type: quoted(),
        })?;
    if value.is_empty() {
        return Err(MultipartError::EmptyBoundary {
            content_type: quoted(),
        });
    }
    if value.len() > MAX_BOUNDARY {
        return Err(MultipartError::BoundaryTooLong {
            len: value.len(),
            content_type: quoted(),
        });
    }
    Ok(value)
}

/// The head of one part: its header fields, in order, as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartHead {
    /// `(name, value)`: the name as sent, the value without surrounding spaces and tabs
    /// (folded lines joined by one space).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl PartHead {
    /// The first field of this name (case-insensitive), trimmed, as (lossy) UTF-8.
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|value| String::from_utf8_lossy(trim(value)).into_owned())
    }

    /// The media type of the part, lower case, without parameters.
    pub fn content_type(&self) -> Option<String> {
        let value = self.header("content-type")?;
        let end = memchr::memchr(b';', value).unwrap_or(value.len());
        let media = trim(&value[..end]);
        (!media.is_empty()).then(|| String::from_utf8_lossy(media).to_ascii_lowercase())
    }

    /// The `name` parameter of Content-Disposition (`form-data; name="x"`): the form
    /// field this part holds.
    ///
    /// Quoted strings lose their quotes and their `\"` and `\\` escapes (any other
    /// backslash is kept: browsers send Windows paths unescaped); `name*=` (RFC 5987)
    /// wins over `name=` when both are present and it decodes.
    pub fn disposition_name(&self) -> Option<String> {
        self.disposition_param("name")
    }

    /// The `filename` parameter of Content-Disposition, as sent: `filename*=UTF-8''…`
    /// (RFC 5987, percent-decoded; ISO-8859-1 also known) wins over `filename=`, quoted
    /// strings are unescaped as in [`PartHead::disposition_name`], tokens are taken as
    /// they are.
    ///
    /// Not sanitised: it may hold `../`, NUL, a path or anything else. The caller must
    /// never use it as a file name as it is.
    pub fn filename(&self) -> Option<String> {
        self.disposition_param("filename")
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn disposition_param(&self, name: &str) -> Option<String> {
        let params = params(self.header("content-disposition")?);
        let extended = format!("{name}*");
        params
            .iter()
            .find(|(n, _)| *n == extended)
            .and_then(|(_, v)| ext_value(v))
            .or_else(|| {
                params
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            })
    }
}

/// What the parser found, in order: for each part `PartStart`, then `Data` zero or more
/// times, then `PartEnd`.
#[derive(Debug)]
pub enum Event<'a> {
    /// A part begins; its head.
    PartStart(PartHead),
    /// Body bytes of the current part, in order. Where possible a slice of the bytes
    /// given to [`Parser::feed`]; how a part's data is cut into events depends on how the
    /// body was cut into feeds, the bytes do not.
    Data(&'a [u8]),
    /// The current part ended: at a delimiter, at a capture gap, or at the end of the
    /// body (the last two with a note).
    PartEnd,
}

/// Bounds on what one body may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Parts announced at most; later parts are skipped, counted, and noted once.
    pub max_parts: u64,
    /// Longest part head, its blank line included; a longer one is noted and its part
    /// skipped.
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_parts: DEFAULT_MAX_PARTS,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        }
    }
}

/// The streaming parser of one multipart body.
#[derive(Debug)]
pub struct Parser {
    delimiter: Delimiter,
    limits: Limits,
    state: State,
    /// Body bytes received but not yet decided on: a possible delimiter (or its line end)
    /// at the end of the last feed. At most `needle + 2` bytes.
    hold: Vec<u8>,
    /// Where the hold meets the next feed.
    scratch: Vec<u8>,
    /// The head of the current part, so far.
    head: Vec<u8>,
    /// Where the last unfinished line of `head` starts.
    head_line: usize,
    /// Body offset of the first byte not consumed (the first held byte).
    offset: u64,
    /// Number of the current part, from 1, counting every part the body opens.
    part: u64,
    /// Body offset of the current part's boundary line (its `--`).
    part_offset: u64,
    started: u64,
    skipped: u64,
    beyond: u64,
    first_beyond: Option<u64>,
    preamble: u64,
    preamble_blank: bool,
    found: bool,
    closed: bool,
    lossy: bool,
    finished: bool,
    notes: Vec<String>,
    notes_dropped: u64,
}

/// Where in the body the parser is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Looking for the next delimiter; bytes before it go to `mode`. `at_start`: a
    /// delimiter may also start right here without a line end before it (the body's start,
    /// or just after a gap).
    Scan { mode: Mode, at_start: bool },
    /// The rest of a delimiter's line.
    Line(Line),
    /// After the close delimiter: everything is ignored.
    Epilogue,
}

/// Who gets the bytes before the next delimiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Nobody: before the first delimiter.
    Preamble,
    /// The current part's head.
    Head,
    /// The current part's data: [`Event::Data`].
    Data,
    /// Nobody: a part skipped (bad head, beyond the limit, cut by a gap).
    Skip,
}

/// The rest of a delimiter line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// Transport padding: spaces and tabs.
    Padding,
    /// A CR was seen; LF ends the line.
    Cr,
    /// Unexpected bytes: skipped to the line end.
    Junk,
}

/// Invariants:
/// - Events come as `PartStart Data* PartEnd` per part; every `PartStart` gets its
///   `PartEnd` by [`Parser::finish`] at the latest.
/// - Split independence: the events' bytes, the parts, the notes and `complete()` depend
///   only on the body bytes and where gaps are, never on how the body was cut into feeds.
///   A decision needing bytes not yet seen is deferred by holding at most the candidate
///   delimiter (`[CR] LF -- boundary` and one byte after it); everything before it is
///   delivered at once.
/// - A line end before `--boundary` is never delivered as data: a trailing CR is always
///   held until the next byte shows whether it starts a delimiter.
/// - Memory: `hold` ≤ needle + 2 bytes, `scratch` ≤ hold + window, `head` ≤
///   `max_head_bytes + 1`, notes ≤ `MAX_NOTES` + 3; nothing else grows with the body.
/// - `offset` is the body offset of `hold[0]`: notes give offsets that do not depend on
///   the split either.
impl Parser {
    /// A parser for a body with this boundary (from [`boundary`]).
    pub fn new(boundary: &[u8], limits: Limits) -> Self {
        let delimiter = Delimiter::new(boundary);
        let window = delimiter.window();
        Parser {
            delimiter,
            limits,
            state: State::Scan {
                mode: Mode::Preamble,
                at_start: true,
            },
            hold: Vec::with_capacity(window),
            scratch: Vec::with_capacity(2 * window),
            head: Vec::new(),
            head_line: 0,
            offset: 0,
            part: 0,
            part_offset: 0,
            started: 0,
            skipped: 0,
            beyond: 0,
            first_beyond: None,
            preamble: 0,
            preamble_blank: true,
            found: false,
            closed: false,
            lossy: false,
            finished: false,
            notes: Vec::new(),
            notes_dropped: 0,
        }
    }

    /// Feed the next bytes of the (decoded) body; calls `on` for the events they
    /// complete. Never fails: problems become notes, and parsing goes on where it
    /// sensibly can. Ignored after [`Parser::finish`].
    pub fn feed(&mut self, bytes: &[u8], on: &mut dyn FnMut(Event<'_>)) {
        if self.finished || bytes.is_empty() {
            return;
        }
        let mut at = 0;
        if !self.hold.is_empty() {
            // Join the hold with the start of the input in a small buffer until the hold
            // is decided; the rest of the input is then parsed where it lies.
            let window = self.delimiter.window();
            let mut scratch = mem::take(&mut self.scratch);
            while !self.hold.is_empty() && at < bytes.len() {
                let take = (bytes.len() - at).min(window);
                scratch.clear();
                scratch.extend_from_slice(&self.hold);
                scratch.extend_from_slice(&bytes[at..at + take]);
                let held = self.hold.len();
                self.hold.clear();
                let used = self.run(&scratch, false, on);
                if used >= held {
                    // What is left lies in `bytes`: parse it from there.
                    at += used - held;
                    break;
                }
                self.hold.extend_from_slice(&scratch[used..]);
                at += take;
            }
            self.scratch = scratch;
        }
        if self.hold.is_empty() {
            let rest = &bytes[at..];
            let used = self.run(rest, false, on);
            self.hold.extend_from_slice(&rest[used..]);
        }
    }

    /// Bytes were lost (a capture gap) at this point of the body. The current part is cut
    /// there (`PartEnd`, with a note) and parsing resumes at the next boundary line.
    /// A gap in the epilogue is ignored. Ignored after [`Parser::finish`].
    pub fn gap(&mut self, len: u64, on: &mut dyn FnMut(Event<'_>)) {
        if self.finished {
            return;
        }
        // What is held is all there is before the gap.
        self.flush(on);
        let at = self.offset;
        let lost = format!("a capture gap of {len} bytes at body offset {at}");
        match self.state {
            State::Epilogue => {}
            State::Line(_) => {
                let note = format!(
                    "part {} (body offset {}): its head was lost in {lost}; part skipped",
                    self.part, self.part_offset
                );
                self.lose_part(note);
            }
            State::Scan { mode, .. } => match mode {
                Mode::Preamble => {
                    self.lossy = true;
                    self.note(format!("{lost}, before the first boundary"));
                    self.state = State::Scan {
                        mode: Mode::Preamble,
                        at_start: true,
                    };
                }
                Mode::Head => {
                    let note = format!(
                        "part {} (body offset {}): head cut by {lost}; part skipped",
                        self.part, self.part_offset
                    );
                    self.lose_part(note);
                }
                Mode::Data => {
                    on(Event::PartEnd);
                    self.lossy = true;
                    self.note(format!(
                        "part {} (body offset {}): cut by {lost}; its data ends there",
                        self.part, self.part_offset
                    ));
                    self.resync();
                }
                Mode::Skip => {
                    self.lossy = true;
                    self.note(format!("{lost}, in skipped part {}", self.part));
                    self.resync();
                }
            },
        }
        self.offset += len;
    }

    /// The body ended. A part still open (no close delimiter seen) gets its `PartEnd` and
    /// a note "no final boundary: the last part may be cut"; the notes for skipped parts
    /// beyond [`Limits::max_parts`] are added here. Later calls do nothing.
    pub fn finish(&mut self, on: &mut dyn FnMut(Event<'_>)) {
        if self.finished {
            return;
        }
        self.flush(on);
        self.finished = true;
        let at = self.offset;
        match self.state {
            State::Epilogue => {}
            State::Scan {
                mode: Mode::Preamble,
                ..
            } => {
                self.lossy = true;
                self.note_always(format!(
                    "no boundary found in {at} bytes of body: nothing extracted"
                ));
            }
            State::Scan {
                mode: Mode::Data, ..
            } => {
                on(Event::PartEnd);
                self.lossy = true;
                self.note_always(format!(
                    "no final boundary: the last part (part {}, body offset {}) may be cut at body offset {at}",
                    self.part, self.part_offset
                ));
            }
            State::Scan {
                mode: Mode::Head, ..
            } => {
                let note = format!(
                    "part {} (body offset {}): the body ended inside its head; part skipped",
                    self.part, self.part_offset
                );
                self.lose_part(note);
                self.no_final(at);
            }
            State::Scan {
                mode: Mode::Skip, ..
            }
            | State::Line(_) => self.no_final(at),
        }
        if self.beyond > 0 {
            self.note_always(format!(
                "{} parts beyond the limit of {} skipped (the first at body offset {})",
                self.beyond,
                self.limits.max_parts,
                self.first_beyond.unwrap_or(0)
            ));
        }
        if self.notes_dropped > 0 {
            self.note_always(format!("{} more notes not kept", self.notes_dropped));
        }
    }

    /// Every anomaly, worded for a user, with where it was (part number, counting every
    /// part the body opens from 1, and body offset).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Parts started: the number of [`Event::PartStart`] events.
    pub fn parts(&self) -> u64 {
        self.started
    }

    /// Parts opened by a delimiter but not announced: beyond [`Limits::max_parts`], with a
    /// head that does not parse or is too long, or whose head was cut.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The close delimiter was seen, and no gap (before it), skipped part or other
    /// anomaly lost bytes. A non-blank preamble alone does not make a body incomplete.
    pub fn complete(&self) -> bool {
        self.closed && !self.lossy
    }

    /// Bytes held by the parser: about twice the boundary plus the head being read
    /// (at most [`Limits::max_head_bytes`]) plus the notes.
    pub fn memory(&self) -> usize {
        self.hold.capacity()
            + self.scratch.capacity()
            + self.head.capacity()
            + self.delimiter.memory()
            + self.notes.iter().map(String::len).sum::<usize>()
    }

    /// Parses `buf` as far as it can be decided, calling `on`; returns the bytes consumed
    /// (the rest must be held). With `eof`, everything is consumed.
    fn run(&mut self, buf: &[u8], eof: bool, on: &mut dyn FnMut(Event<'_>)) -> usize {
        let base = self.offset;
        let mut pos = 0;
        while pos < buf.len() {
            match self.state {
                State::Epilogue => pos = buf.len(),
                State::Line(line) => pos = self.line(line, buf, pos),
                State::Scan { at_start, .. } => {
                    match self.delimiter.scan(&buf[pos..], at_start, eof) {
                        Scan::More { safe } => {
                            self.deliver(&buf[pos..pos + safe], on);
                            pos += safe;
                            if safe > 0
                                && let State::Scan { at_start, .. } = &mut self.state
                            {
                                *at_start = false;
                            }
                            break;
                        }
                        Scan::Delim {
                            data_end,
                            dash,
                            after,
                            close,
                        } => {
                            self.deliver(&buf[pos..pos + data_end], on);
                            self.at_delimiter(base + (pos + dash) as u64, close, on);
                            pos += after;
                        }
                    }
                }
            }
        }
        self.offset = base + pos as u64;
        pos
    }

    /// Parses what is held as if the body ended there.
    fn flush(&mut self, on: &mut dyn FnMut(Event<'_>)) {
        let hold = mem::take(&mut self.hold);
        self.run(&hold, true, on);
        self.hold = hold;
        self.hold.clear();
    }

    /// Bytes before the next delimiter (or certainly not part of one), to the current mode.
    fn deliver(&mut self, bytes: &[u8], on: &mut dyn FnMut(Event<'_>)) {
        let State::Scan { mode, .. } = self.state else {
            return;
        };
        match mode {
            Mode::Preamble => {
                self.preamble += bytes.len() as u64;
                if self.preamble_blank {
                    self.preamble_blank = bytes
                        .iter()
                        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
                }
            }
            Mode::Data => {
                if !bytes.is_empty() {
                    on(Event::Data(bytes));
                }
            }
            Mode::Skip => {}
            Mode::Head => {
                if let Some(end) = self.head_bytes(bytes) {
                    self.head_done(on);
                    let rest = &bytes[end..];
                    if !rest.is_empty()
                        && self.state
                            == (State::Scan {
                                mode: Mode::Data,
                                at_start: false,
                            })
                    {
                        on(Event::Data(rest));
                    }
                }
            }
        }
    }

    /// Adds bytes to the head; returns how many of them it took when the head is complete
    /// (its blank line seen). Skips the part when the head grows too long.
    fn head_bytes(&mut self, bytes: &[u8]) -> Option<usize> {
        let max = self.limits.max_head_bytes;
        let old = self.head.len();
        let take = bytes.len().min(max + 1 - old);
        if self.head.capacity() < old + take {
            let want = (old + take).max(2 * self.head.capacity()).min(max + 1);
            self.head.reserve_exact(want - old);
        }
        self.head.extend_from_slice(&bytes[..take]);
        for p in memchr::memchr_iter(b'\n', &self.head[old..]) {
            let p = old + p;
            let line = &self.head[self.head_line..p];
            if line.is_empty() || line == b"\r" {
                if p + 1 > max {
                    break;
                }
                self.head.truncate(p + 1);
                return Some(p + 1 - old);
            }
            self.head_line = p + 1;
        }
        if self.head.len() > max {
            let note = format!(
                "part {} (body offset {}): head longer than {max} bytes; part skipped",
                self.part, self.part_offset
            );
            self.lose_part(note);
        }
        None
    }

    /// The head is complete: announce the part, or skip it if the head does not parse.
    fn head_done(&mut self, on: &mut dyn FnMut(Event<'_>)) {
        let parsed = parse_head(&self.head);
        self.head.clear();
        self.head_line = 0;
        match parsed {
            Ok(headers) => {
                self.started += 1;
                self.state = State::Scan {
                    mode: Mode::Data,
                    at_start: false,
                };
                on(Event::PartStart(PartHead { headers }));
            }
            Err(e) => {
                let note = format!(
                    "part {} (body offset {}): head does not parse ({e}); part skipped",
                    self.part, self.part_offset
                );
                self.lose_part(note);
            }
        }
    }

    /// A delimiter whose `--` is at body offset `dash`.
    fn at_delimiter(&mut self, dash: u64, close: bool, on: &mut dyn FnMut(Event<'_>)) {
        if let State::Scan { mode, .. } = self.state {
            match mode {
                Mode::Preamble => {
                    self.found = true;
                    if !self.preamble_blank {
                        self.note(format!(
                            "preamble of {} bytes before the first boundary ignored",
                            self.preamble
                        ));
                    }
                }
                Mode::Head => {
                    if self.head.len() == self.head_line {
                        // `head CRLF` + `CRLF--boundary`: a complete head, no data.
                        self.head_done(on);
                        if self.state
                            == (State::Scan {
                                mode: Mode::Data,
                                at_start: false,
                            })
                        {
                            on(Event::PartEnd);
                        }
                    } else {
                        let note = format!(
                            "part {} (body offset {}): no blank line after the head before the next boundary; part skipped",
                            self.part, self.part_offset
                        );
                        self.lose_part(note);
                    }
                }
                Mode::Data => on(Event::PartEnd),
                Mode::Skip => {}
            }
        }
        if close {
            self.closed = true;
            self.state = State::Epilogue;
        } else {
            self.part += 1;
            self.part_offset = dash;
            self.state = State::Line(Line::Padding);
        }
    }

    /// The rest of a delimiter line from `buf[pos..]`; returns where parsing goes on.
    fn line(&mut self, mut line: Line, buf: &[u8], pos: usize) -> usize {
        let mut i = pos;
        while i < buf.len() {
            if line == Line::Junk {
                match memchr::memchr(b'\n', &buf[i..]) {
                    Some(p) => i += p,
                    None => {
                        i = buf.len();
                        break;
                    }
                }
            }
            let b = buf[i];
            i += 1;
            match (line, b) {
                (_, b'\n') => {
                    self.open_part();
                    return i;
                }
                (Line::Padding, b' ' | b'\t') | (Line::Junk, _) => {}
                (Line::Padding, b'\r') => line = Line::Cr,
                (Line::Padding | Line::Cr, _) => {
                    self.lossy = true;
                    self.note(format!(
                        "part {} (body offset {}): unexpected bytes after its boundary, ignored to the line end",
                        self.part, self.part_offset
                    ));
                    line = Line::Junk;
                }
            }
        }
        self.state = State::Line(line);
        i
    }

    /// A delimiter line ended: the current part's head follows.
    fn open_part(&mut self) {
        self.head.clear();
        self.head_line = 0;
        if self.part > self.limits.max_parts {
            self.beyond += 1;
            self.skipped += 1;
            self.lossy = true;
            self.first_beyond.get_or_insert(self.part_offset);
            self.state = State::Scan {
                mode: Mode::Skip,
                at_start: false,
            };
        } else {
            self.state = State::Scan {
                mode: Mode::Head,
                at_start: false,
            };
        }
    }

    /// The current part will not be announced: note why and skip to the next delimiter.
    fn lose_part(&mut self, note: String) {
        self.head.clear();
        self.head_line = 0;
        self.skipped += 1;
        self.lossy = true;
        self.note(note);
        self.state = State::Scan {
            mode: Mode::Skip,
            at_start: false,
        };
    }

    /// After a gap: skip to the next delimiter, which may start right at the gap's end.
    fn resync(&mut self) {
        self.state = State::Scan {
            mode: Mode::Skip,
            at_start: true,
        };
    }

    fn no_final(&mut self, at: u64) {
        self.lossy = true;
        self.note_always(format!(
            "no final boundary: the body ended at offset {at} without the closing --boundary--"
        ));
    }

    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        } else {
            self.notes_dropped += 1;
        }
    }

    fn note_always(&mut self, note: String) {
        self.notes.push(note);
    }
}

/// The delimiter searched for: `LF -- boundary` (a CR before it is taken along).
#[derive(Debug)]
struct Delimiter {
    needle: Vec<u8>,
    finder: memmem::Finder<'static>,
}

/// What [`Delimiter::scan`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// A delimiter: the bytes before it end at `data_end`, its `--` is at `dash`, and it
    /// (with the `--` of a close delimiter) ends at `after`.
    Delim {
        data_end: usize,
        dash: usize,
        after: usize,
        close: bool,
    },
    /// No delimiter can be decided on: the bytes before `safe` are not part of one, the
    /// rest must be held.
    More { safe: usize },
}

/// What the bytes after `--boundary` make of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Need,
    Data,
    Delim,
    Close,
}

fn after_boundary(rest: &[u8], eof: bool) -> After {
    match rest {
        [] | [b'-'] if eof => After::Delim,
        [] | [b'-'] => After::Need,
        [b'-', b'-', ..] => After::Close,
        [b' ' | b'\t' | b'\r' | b'\n', ..] => After::Delim,
        _ => After::Data,
    }
}

impl Delimiter {
    fn new(boundary: &[u8]) -> Self {
        let needle = [b"\n--", boundary].concat();
        let finder = memmem::Finder::new(&needle).into_owned();
        Delimiter { needle, finder }
    }

    /// How much input is joined to the hold: more than the longest hold.
    fn window(&self) -> usize {
        self.needle.len() + 3
    }

    fn memory(&self) -> usize {
        2 * self.needle.len()
    }

    /// The first delimiter in `buf`, or how much of `buf` is certainly not part of one.
    /// `at_start`: a delimiter may start at 0 without a line end; `eof`: nothing follows.
    fn scan(&self, buf: &[u8], at_start: bool, eof: bool) -> Scan {
        let n = self.needle.len();
        let dash = &self.needle[1..];
        if at_start {
            if buf.len() < dash.len() {
                if !eof && dash.starts_with(buf) {
                    return Scan::More { safe: 0 };
                }
            } else if buf.starts_with(dash) {
                match after_boundary(&buf[dash.len()..], eof) {
                    After::Need => return Scan::More { safe: 0 },
                    After::Data => {}
                    after @ (After::Delim | After::Close) => {
                        let close = after == After::Close;
                        return Scan::Delim {
                            data_end: 0,
                            dash: 0,
                            after: dash.len() + if close { 2 } else { 0 },
                            close,
                        };
                    }
                }
            }
        }
        let mut from = 0;
        while let Some(found) = self.finder.find(&buf[from..]) {
            let i = from + found;
            let data_end = if i > 0 && buf[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            match after_boundary(&buf[i + n..], eof) {
                After::Need => return Scan::More { safe: data_end },
                After::Data => from = i + 1,
                After::Delim => {
                    return Scan::Delim {
                        data_end,
                        dash: i + 1,
                        after: i + n,
                        close: false,
                    };
                }
                After::Close => {
                    return Scan::Delim {
                        data_end,
                        dash: i + 1,
                        after: i + n + 2,
                        close: true,
                    };
                }
            }
        }
        let len = buf.len();
        if eof {
            return Scan::More { safe: len };
        }
        // Hold the longest end of `buf` that may begin a delimiter, with a CR before it.
        let tail = len.saturating_sub(n - 1).max(from);
        for p in memchr::memchr_iter(b'\n', &buf[tail..]) {
            let j = tail + p;
            if self.needle.starts_with(&buf[j..]) {
                let safe = if j > 0 && buf[j - 1] == b'\r' {
                    j - 1
                } else {
                    j
                };
                return Scan::More { safe };
            }
        }
        let safe = if buf.last() == Some(&b'\r') {
            len - 1
        } else {
            len
        };
        Scan::More { safe }
    }
}

/// The header fields of a complete head (up to its blank line, or its end).
fn parse_head(head: &[u8]) -> Result<Vec<(String, Vec<u8>)>, MultipartError> {
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for (index, raw) in head.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let number = index + 1;
        match line.first() {
            None => break,
            Some(b' ' | b'\t') => {
                let Some((_, value)) = fields.last_mut() else {
                    return Err(MultipartError::Continuation { line: number });
                };
                let more = trim(line);
                if !value.is_empty() && !more.is_empty() {
                    value.push(b' ');
                }
                value.extend_from_slice(more);
            }
            Some(_) => {
                let Some(colon) = memchr::memchr(b':', line) else {
                    return Err(MultipartError::NoColon {
                        line: number,
                        text: quote(line),
                    });
                };
                let name = trim_end(&line[..colon]);
                if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                    return Err(MultipartError::BadName {
                        line: number,
                        text: quote(line),
                    });
                }
                fields.push((
                    String::from_utf8_lossy(name).into_owned(),
                    trim(&line[colon + 1..]).to_vec(),
                ));
            }
        }
    }
    Ok(fields)
}

/// The parameters after the first `;` of a header value, as `(lower-case name, value)`:
/// quoted strings unquoted (only `\"` and `\\` are escapes), tokens trimmed.
fn params(value: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Some(semi) = memchr::memchr(b';', value) else {
        return out;
    };
    let s = value;
    let mut i = semi + 1;
    while i < s.len() {
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b';') {
            i += 1;
        }
        let start = i;
        while i < s.len() && !matches!(s[i], b'=' | b';') {
            i += 1;
        }
        let name = String::from_utf8_lossy(trim(&s[start..i])).to_ascii_lowercase();
        if i >= s.len() || s[i] == b';' {
            if !name.is_empty() {
                out.push((name, Vec::new()));
            }
            continue;
        }
        i += 1;
        while i < s.len() && matches!(s[i], b' ' | b'\t') {
            i += 1;
        }
        let mut v = Vec::new();
        if s.get(i) == Some(&b'"') {
            i += 1;
            while i < s.len() {
                match s[i] {
                    b'"' => {
                        i += 1;
                        break;
                    }
                    b'\\' if matches!(s.get(i + 1), Some(b'"' | b'\\')) => {
                        v.push(s[i + 1]);
                        i += 2;
                    }
                    c => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            while i < s.len() && s[i] != b';' {
                i += 1;
            }
        } else {
            let start = i;
            while i < s.len() && s[i] != b';' {
                i += 1;
            }
            v = trim(&s[start..i]).to_vec();
        }
        if !name.is_empty() {
            out.push((name, v));
        }
    }
    out
}

/// An RFC 5987 ext-value, `charset'language'percent-encoded`, decoded.
fn ext_value(v: &[u8]) -> Option<String> {
    let q1 = memchr::memchr(b'\'', v)?;
    let q2 = q1 + 1 + memchr::memchr(b'\'', &v[q1 + 1..])?;
    let charset = trim(&v[..q1]);
    let mut bytes = Vec::with_capacity(v.len() - q2);
    let mut rest = &v[q2 + 1..];
    while let [first, tail @ ..] = rest {
        if *first == b'%'
            && let [h, l, after @ ..] = tail
            && let (Some(h), Some(l)) = (hex(*h), hex(*l))
        {
            bytes.push(h << 4 | l);
            rest = after;
            continue;
        }
        bytes.push(*first);
        rest = tail;
    }
    if charset.eq_ignore_ascii_case(b"iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    trim_end(&bytes[start..])
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |p| p + 1);
    &bytes[..end]
}

/// Input quoted in a message: lossy UTF-8, at most [`MAX_QUOTE`] characters.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX_QUOTE) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests;
