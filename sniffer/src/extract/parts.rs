//! Multipart bodies in the extractor: every part of a `multipart/form-data` upload and of
//! a `multipart/byteranges` 206 response is saved as a file of its own.
//!
//! The body goes through [`multipart::Parser`] as it streams by; each part is selected
//! by its own Content-Type like any body (a generic or missing type by its first bytes),
//! and written as it arrives:
//! - a form part with a `filename` is an uploaded file, named
//!   `up-STREAM-TX-pN-NAME.EXT` from the sanitised file name (a name with `../`, a NUL or
//!   an absolute path gets a note, and can never leave the directory: only its last
//!   segment, reduced to safe bytes, is used); a form field without a file name is saved
//!   only when everything is;
//! - a byteranges part is saved with its own Content-Range, and handed to the 206 merge
//!   ([`super::ranges`]) like a single-range response: the merged file is complete when
//!   the parts of all responses cover the resource. The first part decides (by its type,
//!   or by its bytes) whether the parts of the body are wanted.
//!
//! Whatever is wrong with the body (no final boundary, a capture gap, a part head that
//! does not parse, too many parts) is a note of the parser, attached to the part saved
//! last; the part a gap or the body's end cut short is marked incomplete. A body in
//! which no part is found is saved whole (its first [`MAX_PREAMBLE`] bytes), with the
//! notes.

use super::{
    Extractor, IndexEntry, Job, Sink, detect, is_generic,
    multipart::{Event, Limits, Parser, PartHead},
    naming, ready,
};
use crate::{
    http::{BodyEvent, ContentRange, Transaction},
    records::PartOf,
    wire::Direction,
};

/// The two multipart bodies whose parts are files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `multipart/form-data` (a request's).
    Form,
    /// `multipart/byteranges` (a response's).
    ByteRanges,
}

impl Kind {
    /// The kind of a body of media type `declared` going `dir`, if its parts are files.
    pub(super) fn of(dir: Direction, declared: Option<&str>) -> Option<Self> {
        match (dir, declared) {
            (Direction::Orig, Some("multipart/form-data")) => Some(Self::Form),
            (Direction::Resp, Some("multipart/byteranges")) => Some(Self::ByteRanges),
            _ => None,
        }
    }
}

/// Bytes of a body kept until its first part starts: what is saved when none does.
pub(super) const MAX_PREAMBLE: usize = 16 * 1024;

/// Memory one multipart body may hold beyond its file's buffer, at most: the preamble,
/// a part head, and a part's prefix for detection.
pub(super) const MEMORY: u64 =
    (MAX_PREAMBLE + super::multipart::DEFAULT_MAX_HEAD_BYTES + detect::PREFIX + 1024) as u64;

/// A multipart body being split.
pub(super) struct MultipartBody {
    parser: Parser,
    state: State,
}

/// Everything but the parser (so that the parser's callback can borrow it).
struct State {
    kind: Kind,
    /// The parser is fed decoded bytes (the body has a content coding), else raw ones.
    encoded: bool,
    /// Byteranges: whether this body's parts are saved, once the first part decided.
    wanted: Option<bool>,
    /// The body up to its first part.
    preamble: Vec<u8>,
    /// Bytes of the body seen.
    seen: u64,
    /// Parts started so far; the number of the current one (from 1, as in the notes).
    parts: u64,
    current: Option<Current>,
    /// The part saved last: its index line is written when the next part is saved or the
    /// body ends, so that notes about what comes after it can join it.
    held: Option<Held>,
    /// Parser notes already given out.
    notes_taken: usize,
    /// Notes not yet on a part.
    notes: Vec<String>,
    /// Entries of the parts saved, for the transaction's line.
    saved: Vec<IndexEntry>,
    /// Form fields not saved (no file name, and not everything is saved).
    fields_skipped: u64,
    /// The index line of the body, which each part's line starts from.
    template: IndexEntry,
}

/// A part being read.
struct Current {
    number: u64,
    field: Option<String>,
    filename: Option<String>,
    content_type: Option<String>,
    content_range: Option<String>,
    out: PartOut,
    /// Saved whatever its bytes show (its declared type is wanted, or everything is).
    wanted: bool,
    detected: Option<detect::Detected>,
    notes: Vec<String>,
}

/// Where a part's bytes go.
enum PartOut {
    /// Its first bytes, until detection decides.
    Pending(Vec<u8>),
    File(Sink),
    Skip,
}

/// A saved part whose index line waits.
struct Held {
    sink: Sink,
    entry: IndexEntry,
    number: u64,
    range: Option<ContentRange>,
}

impl MultipartBody {
    /// A body of `kind` split at `boundary`.
    /// `template` is the body's index line (without file, size or sha256).
    pub(super) fn new(kind: Kind, boundary: &[u8], encoded: bool, template: IndexEntry) -> Self {
        Self {
            parser: Parser::new(boundary, Limits::default()),
            state: State {
                kind,
                encoded,
                wanted: None,
                preamble: Vec::new(),
                seen: 0,
                parts: 0,
                current: None,
                held: None,
                notes_taken: 0,
                notes: Vec::new(),
                saved: Vec::new(),
                fields_skipped: 0,
                template,
            },
        }
    }
}

/// Whether a file name from the client would have been unsafe to use as it is.
fn unsafe_filename(name: &str) -> bool {
    // A path (absolute or not, either separator), a parent, a NUL, a drive letter.
    name.contains(['/', '\\', '\0']) || name.contains("..") || name.as_bytes().get(1) == Some(&b':')
}

impl Extractor {
    /// A piece of a multipart body.
    pub(super) fn multipart_event(
        &mut self,
        tx: &Transaction,
        dir: Direction,
        m: &mut MultipartBody,
        event: BodyEvent<'_>,
    ) {
        let MultipartBody { parser, state } = m;
        match event {
            BodyEvent::Raw { bytes, .. } | BodyEvent::Decoded { bytes, .. }
                if matches!(event, BodyEvent::Decoded { .. }) == state.encoded =>
            {
                if state.parts == 0 && state.preamble.len() < MAX_PREAMBLE {
                    let room = MAX_PREAMBLE - state.preamble.len();
                    state
                        .preamble
                        .extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                state.seen += bytes.len() as u64;
                parser.feed(bytes, &mut |e| self.part_event(tx, dir, state, e));
            }
            BodyEvent::Gap { len, .. } if !state.encoded => {
                let open = state.current.as_ref().map(|c| c.number);
                state.seen += len;
                parser.gap(len, &mut |e| self.part_event(tx, dir, state, e));
                if let Some(h) = state.held.as_mut().filter(|h| Some(h.number) == open) {
                    h.entry.complete = false;
                }
            }
            BodyEvent::DecodeFailed { reason } => {
                state
                    .notes
                    .push(format!("{reason}: the parts end where decoding failed"));
            }
            BodyEvent::Raw { .. } | BodyEvent::Decoded { .. } | BodyEvent::Gap { .. } => {}
        }
        take_notes(parser, state);
    }

    /// One event of the parser.
    fn part_event(&mut self, tx: &Transaction, dir: Direction, st: &mut State, e: Event<'_>) {
        match e {
            Event::PartStart(head) => {
                st.parts += 1;
                st.preamble = Vec::new();
                let current = self.start_part(st, &head);
                st.current = Some(current);
            }
            Event::Data(bytes) => {
                let Some(c) = st.current.as_mut() else {
                    return;
                };
                match &mut c.out {
                    PartOut::File(sink) => sink.write_at(ready(&self.writer), sink.len, bytes),
                    PartOut::Pending(prefix) => {
                        prefix.extend_from_slice(bytes);
                        if detect::detect(prefix, false, false) != detect::Verdict::More {
                            self.settle_part(tx, dir, st);
                        }
                    }
                    PartOut::Skip => {}
                }
            }
            Event::PartEnd => {
                self.settle_part(tx, dir, st);
                let Some(mut c) = st.current.take() else {
                    return;
                };
                let PartOut::File(sink) = std::mem::replace(&mut c.out, PartOut::Skip) else {
                    // Notes on a part not saved are about the body: the next saved part
                    // (or the transaction's line) carries them.
                    st.notes.append(&mut c.notes);
                    return;
                };
                self.release(Some(tx), st);
                let range = c
                    .content_range
                    .as_deref()
                    .and_then(|r| ContentRange::parse(r.as_bytes()));
                let number = c.number;
                let entry = part_entry(&st.template, &sink, c);
                st.held = Some(Held {
                    sink,
                    entry,
                    number,
                    range,
                });
            }
        }
    }

    /// A part begins: decide where its bytes go.
    fn start_part(&mut self, st: &mut State, head: &PartHead) -> Current {
        let mut c = Current {
            number: st.parts,
            field: head.disposition_name(),
            filename: head.filename(),
            content_type: head.content_type(),
            content_range: None,
            out: PartOut::Skip,
            wanted: false,
            detected: None,
            notes: std::mem::take(&mut st.notes),
        };
        match st.kind {
            Kind::Form => {
                if c.filename.is_none() && !self.config.all {
                    st.fields_skipped += 1;
                    return c;
                }
                if let Some(f) = c.filename.as_deref().filter(|f| unsafe_filename(f)) {
                    c.notes.push(format!(
                        "the client's file name {f:?} is not a safe name: only its last segment is used"
                    ));
                }
            }
            Kind::ByteRanges => {
                c.content_range = head.header_str("content-range");
                match c.content_range.as_deref() {
                    None => c
                        .notes
                        .push("the part has no Content-Range: not merged".to_owned()),
                    Some(r) if ContentRange::parse(r.as_bytes()).is_none() => c.notes.push(format!(
                        "Content-Range {r:?} is not a byte range within the stated length: not merged"
                    )),
                    Some(_) => {}
                }
                if let Some(wanted) = st.wanted {
                    if wanted {
                        c.out = PartOut::Pending(Vec::new());
                        c.wanted = true;
                    }
                    return c;
                }
            }
        }
        let declared = c.content_type.as_deref();
        // Even a wanted part waits for its first bytes: they give its detected type, and
        // its name's extension.
        if self.config.all || self.wants(declared) {
            c.out = PartOut::Pending(Vec::new());
            c.wanted = true;
            st.wanted.get_or_insert(true);
        } else if is_generic(declared) {
            c.out = PartOut::Pending(Vec::new());
        } else {
            st.wanted.get_or_insert(false);
        }
        c
    }

    /// Detection is over for the current part (if it was waiting): create its file, or
    /// skip it.
    fn settle_part(&mut self, tx: &Transaction, dir: Direction, st: &mut State) {
        if let Some(mut c) = st.current.take() {
            if matches!(c.out, PartOut::Pending(_)) {
                self.settle_current(tx, dir, &mut c);
                if st.kind == Kind::ByteRanges {
                    st.wanted.get_or_insert(matches!(c.out, PartOut::File(_)));
                }
            }
            st.current = Some(c);
        }
    }

    fn settle_current(&mut self, tx: &Transaction, dir: Direction, c: &mut Current) {
        let PartOut::Pending(prefix) = std::mem::replace(&mut c.out, PartOut::Skip) else {
            return;
        };
        c.detected = match detect::detect(&prefix, true, false) {
            detect::Verdict::Done(d) => d,
            detect::Verdict::More => None,
        };
        if !(c.wanted || c.detected.is_some_and(|d| self.wants(Some(d.mime)))) {
            return;
        }
        let ext = c
            .detected
            .map(|d| d.ext)
            .or_else(|| c.content_type.as_deref().and_then(naming::extension_for));
        let uri = tx.request.as_ref().map_or(&b""[..], |r| &r.uri);
        let source = c
            .filename
            .as_deref()
            .or(c.field.as_deref())
            .map_or(uri, str::as_bytes);
        let up = super::upload_prefix(dir == Direction::Orig);
        let (stream, number, part) = (tx.stream, tx.number, c.number);
        match self.sink_named(&|attempt| {
            format!(
                "{up}{}",
                naming::part_file_name(stream, number, part, source, ext, attempt)
            )
        }) {
            Ok(mut sink) => {
                sink.write_at(ready(&self.writer), 0, &prefix);
                c.out = PartOut::File(sink);
            }
            Err(e) => {
                if self.unusable.is_none() {
                    log::warn!("part not saved: {e}");
                }
                self.stats.failed += 1;
            }
        }
    }

    /// Write the index line of the part held back, and merge it if it is a byte range.
    /// (Not merged when the transaction is not known: the capture stopped.)
    fn release(&mut self, tx: Option<&Transaction>, st: &mut State) {
        let Some(Held {
            mut sink,
            entry,
            range,
            ..
        }) = st.held.take()
        else {
            return;
        };
        sink.flush(ready(&self.writer));
        ready(&self.writer).send(Job::Close {
            id: sink.id,
            entry: Box::new(entry.clone()),
        });
        let mut result = entry;
        if let Some(tx) = tx
            && let Some(cr) = range
            && result.complete
            && cr.len() == result.size
        {
            let mime = result
                .content_type
                .clone()
                .or_else(|| result.detected_type.clone());
            if let Some(merged) = self.add_range(tx, &result, cr, mime.as_deref()) {
                result
                    .notes
                    .push(format!("completed the merged file {}", merged.file));
            }
        } else if range.is_some() && result.complete {
            result.notes.push(format!(
                "{} bytes where the Content-Range says {}: not merged",
                result.size,
                range.map_or(0, |r| r.len())
            ));
        }
        st.saved.push(result);
    }

    /// The multipart body of `tx` is over: the last part is closed, and the entries of
    /// every part saved are returned (a body in which no part was found is saved whole).
    pub(super) fn multipart_done(
        &mut self,
        tx: &Transaction,
        dir: Direction,
        mut m: MultipartBody,
        extra: Vec<String>,
    ) -> Vec<IndexEntry> {
        let MultipartBody { parser, state } = &mut m;
        let open = state.current.as_ref().map(|c| c.number);
        parser.finish(&mut |e| self.part_event(tx, dir, state, e));
        if let Some(h) = state.held.as_mut().filter(|h| Some(h.number) == open) {
            // Ended by the body's end, not by a delimiter.
            h.entry.complete = false;
        }
        take_notes(parser, state);
        // (The HTTP layer's notes on the body as a whole, its gaps, are the parser's notes
        // on the parts they cut: not repeated on the last part.)
        state.notes.extend(extra);
        if state.fields_skipped > 0 && state.held.is_some() {
            state.notes.push(format!(
                "{} form field{} without a file name not saved (saved with --extract-all)",
                state.fields_skipped,
                if state.fields_skipped == 1 { "" } else { "s" }
            ));
        }
        // (A body cut short ends its last part at the body's end, marked above; a gap
        // marks the part it cut. Parts read whole between delimiters stay complete.)
        if let Some(h) = state.held.as_mut() {
            h.entry.notes.append(&mut state.notes);
        }
        self.release(Some(tx), state);
        if state.parts == 0 && !parser.complete() {
            // (A body of only the close delimiter is an empty form: nothing to keep.)
            self.save_whole(dir, tx.body.complete, state);
        } else if state.saved.is_empty() && !state.notes.is_empty() {
            // Nothing saved to carry them.
            self.unsaved_notes.append(&mut state.notes);
        }
        let mut saved = std::mem::take(&mut state.saved);
        let n = saved.len();
        if n > 1 {
            let first = saved[0].file.clone();
            let last = &mut saved[n - 1];
            last.notes.push(format!(
                "the body was saved as {n} parts, {first} to {}",
                last.file
            ));
        }
        saved
    }

    /// No part was found: save what was kept of the body, with the notes saying why.
    fn save_whole(&mut self, dir: Direction, complete: bool, st: &mut State) {
        let uri = st.template.url.clone().unwrap_or_default();
        let uri = uri.as_bytes();
        let up = super::upload_prefix(dir == Direction::Orig);
        let (stream, number) = (st.template.stream, st.template.transaction);
        let mut sink = match self.sink_named(&|attempt| {
            format!(
                "{up}{}",
                naming::file_name_ext(stream, number, uri, Some("bin"), attempt)
            )
        }) {
            Ok(s) => s,
            Err(e) => {
                if self.unusable.is_none() {
                    log::warn!("multipart body not saved: {e}");
                }
                self.stats.failed += 1;
                return;
            }
        };
        let w = ready(&self.writer);
        sink.write_at(w, 0, &st.preamble);
        sink.flush(w);
        let mut entry = st.template.clone();
        entry.file.clone_from(&sink.name);
        entry.size = sink.len;
        entry.notes = std::mem::take(&mut st.notes);
        entry.complete = complete;
        if st.seen > st.preamble.len() as u64 {
            entry.complete = false;
            entry.notes.push(format!(
                "only the first {} of {} bytes are kept",
                st.preamble.len(),
                st.seen
            ));
        }
        entry
            .notes
            .push("no part found: the body is saved as it is".into());
        ready(&self.writer).send(Job::Close {
            id: sink.id,
            entry: Box::new(entry.clone()),
        });
        st.saved.push(entry);
    }

    /// The capture stopped inside a multipart body: the part held back and the part being
    /// written are indexed as they are, the last one incomplete (nothing is merged).
    pub(super) fn multipart_cut_off(&mut self, mut m: MultipartBody) {
        let MultipartBody { parser, state } = &mut m;
        take_notes(parser, state);
        self.release(None, state);
        let Some(mut c) = state.current.take() else {
            return;
        };
        let PartOut::File(mut sink) = std::mem::replace(&mut c.out, PartOut::Skip) else {
            return;
        };
        sink.flush(ready(&self.writer));
        let mut entry = part_entry(&state.template, &sink, c);
        entry.complete = false;
        entry
            .notes
            .push("the capture stopped inside the body".to_owned());
        ready(&self.writer).send(Job::Close {
            id: sink.id,
            entry: Box::new(entry),
        });
    }
}

/// The index line of a part saved as `sink` (its bytes so far; the part is complete
/// unless the caller says otherwise).
fn part_entry(template: &IndexEntry, sink: &Sink, c: Current) -> IndexEntry {
    IndexEntry {
        file: sink.name.clone(),
        size: sink.len,
        content_type: c.content_type,
        detected_type: c.detected.map(|d| d.mime.to_owned()),
        content_encoding: None,
        content_range: c.content_range,
        complete: true,
        gaps: Vec::new(),
        notes: c.notes,
        part: Some(PartOf {
            part: c.number,
            form_field: c.field,
            filename: c.filename,
        }),
        ..template.clone()
    }
}

/// Move the parser's new notes to the part they concern (the one saved last, else the
/// one being read), or keep them for the next.
fn take_notes(parser: &Parser, st: &mut State) {
    let new = &parser.notes()[st.notes_taken.min(parser.notes().len())..];
    if new.is_empty() {
        return;
    }
    st.notes_taken = parser.notes().len();
    let target = if let Some(h) = st.held.as_mut() {
        &mut h.entry.notes
    } else if let Some(c) = st.current.as_mut() {
        &mut c.notes
    } else {
        &mut st.notes
    };
    target.extend(new.iter().cloned());
}
