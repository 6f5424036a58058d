//! `sniffer http` (the default command): one line per transaction, matching bodies saved.
//!
//! A transaction whose body was saved is printed once its file is indexed, so its line
//! says what is on disk: `-> FILE`, or `-> FILE [not saved whole: ERROR]` when a write
//! failed. Lines keep transaction order. Failed files make the exit code 1.

use std::{
    collections::{HashMap, VecDeque},
    io::{self, BufWriter, Write as _},
};

use sniffer::{
    capture::{IDLE_TICK, Input},
    events::{Events, FlowEvents},
    extract::{ExtractConfig, ExtractStats, Extractor, IndexEntry, IndexHook, Outcome},
    http::{BodyEvent, HttpAnalyzer, HttpListener, HttpStats, Limits, Transaction},
    listener::Tee,
    output::{
        count,
        jsonl::{human, transaction_record},
        stats::Extra,
    },
    pipeline::{self, Extras, Progress},
    records::{Record as _, TransactionRecord},
    wire::Timestamp,
};

use super::{AppError, config::HttpConfig, events, health::Health, privilege, stop};

/// A saved file: (stream, transaction, file name).
type FileKey = (u64, u64, String);

/// A transaction line, waiting (if bodies were saved) for its files' outcomes.
struct Line {
    record: TransactionRecord,
    /// The response's saved file, until its outcome is known.
    waits_for: Option<FileKey>,
    /// The request's saved files, until their outcomes are known.
    uploads_wait: Vec<FileKey>,
}

/// Prints each transaction and hands bodies to the extractor.
struct Printer<W: io::Write> {
    out: W,
    json: bool,
    /// No lines, the summary only.
    quiet: bool,
    once: bool,
    /// Live capture: each line is flushed as its transaction completes.
    flush_each: bool,
    extractor: Extractor,
    saved_any: bool,
    /// Lines not printed yet, in order.
    lines: VecDeque<Line>,
    /// Every transaction also goes here.
    events: Events,
    community_id_seed: u16,
    /// Outcomes that arrived before their line was at the front.
    outcomes: HashMap<FileKey, Outcome>,
    /// Files saved from request bodies whose transactions are not reported yet.
    uploads: HashMap<(u64, u64), Vec<String>>,
    /// Notes about request bodies that no saved file carries, by transaction.
    upload_notes: HashMap<(u64, u64), Vec<String>>,
    error: Option<io::Error>,
}

impl<W: io::Write> Printer<W> {
    /// Print the lines whose files' outcomes are known, in order.
    fn drain(&mut self) {
        for o in self.extractor.outcomes() {
            // Only what a line waits for is kept (a radio stream's tracks, joined files:
            // no line waits for them), so nothing piles up over a long run.
            let key = (o.stream, o.transaction, o.name.clone());
            // (A request's files close before its transaction has a line.)
            let upload = self
                .uploads
                .get(&(o.stream, o.transaction))
                .is_some_and(|files| files.contains(&o.name));
            if upload
                || self
                    .lines
                    .iter()
                    .any(|l| l.waits_for.as_ref() == Some(&key) || l.uploads_wait.contains(&key))
            {
                self.outcomes.insert(key, o);
            }
        }
        let mut printed = false;
        while let Some(front) = self.lines.front_mut() {
            if front
                .uploads_wait
                .iter()
                .any(|k| !self.outcomes.contains_key(k))
            {
                break;
            }
            for key in std::mem::take(&mut front.uploads_wait) {
                let o = self.outcomes.remove(&key).expect("checked above");
                if let Some(e) = o.error {
                    front
                        .record
                        .notes
                        .push(format!("{}: not saved whole: {e}", o.file));
                }
            }
            if let Some(key) = &front.waits_for {
                let Some(o) = self.outcomes.remove(key) else {
                    break;
                };
                front.record.file = Some(o.file);
                front.record.file_error = o.error;
                front.waits_for = None;
            }
            let line = self.lines.pop_front().expect("front exists");
            if self.error.is_none() && !self.quiet {
                let text = if self.json {
                    line.record.to_json()
                } else {
                    human(&line.record, self.extractor.dir())
                };
                if let Err(e) = writeln!(self.out, "{text}") {
                    self.error = Some(e);
                }
                printed = true;
            }
        }
        if printed
            && self.flush_each
            && self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e);
        }
    }
}

impl<W: io::Write> HttpListener for Printer<W> {
    fn response_head(&mut self, tx: &Transaction) -> bool {
        // With --once, nothing more is saved after the first file.
        !(self.once && self.saved_any) && self.extractor.on_head(tx)
    }

    fn body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        self.extractor.on_body(tx, event);
    }

    fn wants_more_body(&mut self, tx: &Transaction) -> bool {
        self.extractor.wants_more(tx)
    }

    fn packet_time(&mut self, ts: Timestamp) {
        self.extractor.set_time(ts);
    }

    fn request_head(&mut self, tx: &Transaction) -> bool {
        self.extractor.on_request_head(tx)
    }

    fn request_body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        self.extractor.on_request_body(tx, event);
    }

    fn wants_more_request_body(&mut self, tx: &Transaction) -> bool {
        self.extractor.wants_more_request(tx)
    }

    fn request_done(&mut self, tx: &Transaction) {
        let saved = self.extractor.on_request_done(tx);
        let notes = self.extractor.take_unsaved_notes();
        if !notes.is_empty() {
            self.upload_notes
                .entry((tx.stream, tx.number))
                .or_default()
                .extend(notes);
        }
        if !saved.is_empty() {
            self.saved_any = true;
            self.uploads
                .entry((tx.stream, tx.number))
                .or_default()
                .extend(saved.into_iter().map(|e| e.file));
        }
    }

    fn http_transaction(&mut self, tx: &Transaction) {
        let saved = self.extractor.on_done(tx);
        self.saved_any |= saved.is_some();
        let mut record = transaction_record(tx, saved.as_ref(), self.community_id_seed);
        if let Some(notes) = self.upload_notes.remove(&(tx.stream, tx.number)) {
            record.notes.extend(notes);
        }
        record.notes.extend(self.extractor.take_unsaved_notes());
        record.request_files = self
            .uploads
            .remove(&(tx.stream, tx.number))
            .unwrap_or_default();
        self.events.emit(&record);
        let uploads_wait = record
            .request_files
            .iter()
            .map(|f| (tx.stream, tx.number, f.clone()))
            .collect();
        self.lines.push_back(Line {
            record,
            waits_for: saved.map(|e| (e.stream, e.transaction, e.file)),
            uploads_wait,
        });
        self.drain();
    }

    fn should_stop(&self) -> bool {
        (self.once && self.saved_any) || self.error.is_some()
    }

    fn memory_in_use(&self) -> u64 {
        self.extractor.memory_in_use()
    }
}

pub(super) fn run(config: &HttpConfig) -> Result<(), AppError> {
    let budget = match (config.max_disk, &config.source.input) {
        (Some(b), _) => Some(b),
        (None, Input::Live(_)) if config.save => super::config::default_budget(&config.out),
        (None, _) => None,
    };
    let extract = ExtractConfig {
        dir: config.out.clone(),
        globs: if config.save {
            config.extract.clone()
        } else {
            Vec::new()
        },
        all: config.save && config.extract_all,
        split_tracks: config.split_tracks,
        budget,
        dedup: config.dedup,
        community_id_seed: config.community_id_seed,
    };
    // Everything that needs privileges first: the output directory (made now only when
    // the program will switch users: afterwards it may not be allowed to), the device.
    // Then the drop, before the extractor starts its thread and before a byte is parsed.
    let dir = if config.save && config.run_as.switches_to().is_some() {
        Some(privilege::open_output_dir(&config.out, &config.run_as)?)
    } else {
        None
    };
    let mut source = stop::open(&config.source.input)?;
    privilege::drop_privileges(&config.run_as)?;
    let mut extractor = match dir {
        Some(dir) => {
            privilege::check_dir(&dir, &config.out, &config.run_as)?;
            Extractor::in_dir(extract, dir)
        }
        None => Extractor::new(extract)?,
    };
    // The event writers' threads start after the drop (it refuses to run beside threads).
    let events = events::start(&config.events)?;
    // Each index line goes out as a `file` event once it is written (sha256 known).
    extractor.set_index_hook(events.is_enabled().then(|| {
        let events = events.clone();
        Box::new(move |entry: &IndexEntry| events.emit(entry)) as IndexHook
    }));
    if let (Input::Live(_), Some(b)) = (&config.source.input, budget) {
        eprintln!(
            "sniffer: saving into {}, at most {b} bytes (--max-disk); the oldest files go first",
            config.out.display()
        );
    }
    let live = matches!(config.source.input, Input::Live(_));
    let printer = Printer {
        out: BufWriter::with_capacity(64 << 10, io::stdout().lock()),
        json: config.json,
        quiet: config.quiet,
        once: config.once,
        flush_each: live,
        extractor,
        saved_any: false,
        lines: VecDeque::new(),
        events: events.clone(),
        community_id_seed: config.community_id_seed,
        outcomes: HashMap::new(),
        uploads: HashMap::new(),
        upload_notes: HashMap::new(),
        error: None,
    };
    let analyzer = HttpAnalyzer::new(printer, Limits::default());
    // Every session also goes out as a `flow` event when it leaves the table.
    let mut tee = Tee::new(
        analyzer,
        FlowEvents::new(events.clone(), config.community_id_seed),
    );
    let mut health = Health::new(config.stats_interval, &events, config.flow.memcap);
    // Live, a line whose file is still being written is printed at the next tick (a
    // second at most on a quiet device) rather than with the next transaction.
    let every = match (health.every(), live) {
        (Some(e), true) => Some(e.min(IDLE_TICK)),
        (None, true) => Some(IDLE_TICK),
        (e, false) => e,
    };
    let mut tick = |p: &Progress, tee: &mut Tee<HttpAnalyzer<Printer<_>>, FlowEvents>| {
        if live {
            tee.first.listener_mut().drain();
        }
        let files = tee.first.listener().extractor.stats();
        let http = tee.first.stats().clone();
        health.tick(
            p,
            Extra {
                http: Some(&http),
                files: Some(&files),
                budget,
                ..Extra::default()
            },
        );
    };
    let ran = pipeline::run_with(
        source.as_mut(),
        &config.flow,
        &mut tee,
        Extras {
            filter: config.source.filter.as_ref(),
            ticks: every.map(|e| (e, &mut tick as &mut dyn FnMut(&Progress, &mut _))),
            limit: config.source.count,
        },
    );
    let (stats, failed) = match ran {
        Ok(stats) => (stats, None),
        Err(e) => (*e.stats, Some(e.source)),
    };
    let mut analyzer = tee.first;
    // Bodies still open (the pipeline ends every session; this is the safety net) are
    // closed and indexed as incomplete.
    analyzer.finish();
    let http = analyzer.stats().clone();
    let mut printer = analyzer.into_listener();
    printer.extractor.finish();
    printer.drain();
    let flushed = printer.out.flush();
    let ex = printer.extractor.stats();
    health.last(
        &stats,
        Extra {
            http: Some(&http),
            files: Some(&ex),
            budget,
            ..Extra::default()
        },
    );
    eprintln!(
        "sniffer: {}",
        summary(&http, &ex, config, stop::requested())
    );
    for line in sniffer::output::flows::closing_summary(&stats) {
        eprintln!("sniffer: {line}");
    }
    events::finish(&events);
    if let Some(e) = printer.error.take() {
        return Err(AppError::Io {
            what: "writing transactions".into(),
            source: e,
        });
    }
    flushed.map_err(|source| AppError::Io {
        what: "writing transactions".into(),
        source,
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if ex.failed > 0 || ex.index_errors > 0 {
        return Err(AppError::NotSaved {
            failed: ex.failed,
            index_errors: ex.index_errors,
            dir: config.out.clone(),
        });
    }
    Ok(())
}

/// The closing line about transactions and files; counters that are zero and mean
/// nothing are left out.
fn summary(http: &HttpStats, ex: &ExtractStats, config: &HttpConfig, interrupted: bool) -> String {
    let mut s = count(http.transactions, "HTTP transaction", "HTTP transactions");
    s += &format!(
        " ({}, {}",
        count(http.requests, "request", "requests"),
        count(http.responses, "response", "responses")
    );
    if http.unanswered > 0 {
        s += &format!(", {} unanswered", http.unanswered);
    }
    s += ")";
    if config.save {
        s += &format!(
            "; {} saved in {}",
            count(ex.saved, "file", "files"),
            config.out.display()
        );
        let mut details = Vec::new();
        if ex.saved > 0 {
            details.push(count(ex.bytes, "byte", "bytes"));
        }
        for (n, what) in [
            (ex.incomplete, "incomplete"),
            (ex.merged, "merged from 206 parts"),
            (ex.kept_raw, "kept raw (decoding failed)"),
            (ex.over_budget, "cut short by the disk budget"),
            (ex.deduplicated, "stored as links to a copy"),
            (ex.tracks, "radio tracks"),
            (ex.joined, "joined from HLS segments"),
        ] {
            if n > 0 {
                details.push(format!("{n} {what}"));
            }
        }
        if !details.is_empty() {
            s += &format!(" ({})", details.join(", "));
        }
    }
    let mut extra = Vec::new();
    if ex.failed > 0 {
        extra.push(count(ex.failed, "file failed", "files failed"));
    }
    if ex.evicted > 0 {
        extra.push(format!(
            "{} for the disk budget ({})",
            count(ex.evicted, "file deleted", "files deleted"),
            count(ex.evicted_bytes, "byte", "bytes")
        ));
    }
    if ex.index_errors > 0 {
        extra.push(count(
            ex.index_errors,
            "index line not written",
            "index lines not written",
        ));
    }
    if ex.radio_streams > 0 {
        extra.push(format!(
            "{} metadata removed",
            count(
                ex.radio_streams,
                "radio stream had its",
                "radio streams had their"
            )
        ));
    }
    if ex.unplaced_bytes > 0 {
        extra.push(format!(
            "{} of radio streams could not be placed after a loss",
            count(ex.unplaced_bytes, "byte", "bytes")
        ));
    }
    if ex.leftover_parts > 0 {
        extra.push(format!(
            "{} from an earlier run",
            count(
                ex.leftover_parts,
                "leftover .part file",
                "leftover .part files"
            )
        ));
    }
    for (n, one, many) in [
        (http.request_bodies, "request body", "request bodies"),
        (http.http09, "HTTP/0.9 request", "HTTP/0.9 requests"),
        (
            http.ambiguous_framing,
            "message with ambiguous framing",
            "messages with ambiguous framing",
        ),
        (http.smuggled, "smuggled request", "smuggled requests"),
        (
            http.malformed,
            "message refused as malformed",
            "messages refused as malformed",
        ),
        (
            ex.refused,
            "wanted body refused as malformed",
            "wanted bodies refused as malformed",
        ),
        (
            http.incomplete_bodies,
            "body incomplete",
            "bodies incomplete",
        ),
        (
            http.decode_failures,
            "body not decoded",
            "bodies not decoded",
        ),
        (
            http.resyncs,
            "time parsing resynchronised",
            "times parsing resynchronised",
        ),
        (
            http.tunnels,
            "session tunnelled (CONNECT/Upgrade)",
            "sessions tunnelled (CONNECT/Upgrade)",
        ),
        (http.capped_sessions, "session capped", "sessions capped"),
        (http.not_http, "session not HTTP", "sessions not HTTP"),
    ] {
        if n > 0 {
            extra.push(count(n, one, many));
        }
    }
    if interrupted {
        extra.push("interrupted".into());
    }
    for e in extra {
        s += "; ";
        s += &e;
    }
    s
}
