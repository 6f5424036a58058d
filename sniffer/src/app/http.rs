//! `sniffer http` (the default command): one line per transaction, matching bodies saved.

use std::{
    io::{self, BufWriter, Write as _},
    sync::atomic::{AtomicBool, Ordering},
};

use sniffer::{
    capture::{self, Input},
    events::{Events, FlowEvents},
    extract::{ExtractConfig, Extractor, IndexEntry, IndexHook},
    http::{BodyEvent, HttpAnalyzer, HttpListener, Limits, Transaction},
    listener::Tee,
    output::jsonl::{human, transaction_record},
    pipeline::{self, Progress},
    records::Record as _,
};

use super::{AppError, config::HttpConfig, events};

/// Set by SIGINT while a capture file is read: stop, and flush what is open.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C stops reading a file cleanly (a second one kills, as usual). Live capture
/// handles its own signals in the source.
fn catch_sigint() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
    // sigaction struct is fully initialised (zeroed, then the fields we use).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as usize;
        sa.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&raw mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &raw const sa, std::ptr::null_mut());
    }
}

/// Prints each transaction and hands bodies to the extractor.
struct Printer<W: io::Write> {
    out: W,
    json: bool,
    once: bool,
    /// Live capture: each line is flushed as its transaction completes.
    flush_each: bool,
    extractor: Extractor,
    saved_any: bool,
    error: Option<io::Error>,
    /// Every transaction also goes here.
    events: Events,
    community_id_seed: u16,
}

impl<W: io::Write> HttpListener for Printer<W> {
    fn response_head(&mut self, tx: &Transaction) -> bool {
        // With --once, nothing more is saved after the first file.
        !(self.once && self.saved_any) && self.extractor.on_head(tx)
    }

    fn body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        self.extractor.on_body(tx, event);
    }

    fn http_transaction(&mut self, tx: &Transaction) {
        let saved = self.extractor.on_done(tx);
        self.saved_any |= saved.is_some();
        let record = transaction_record(tx, saved.as_ref(), self.community_id_seed);
        self.events.emit(&record);
        if self.error.is_some() {
            return;
        }
        let line = if self.json {
            record.to_json()
        } else {
            human(&record, self.extractor.dir())
        };
        let written = writeln!(self.out, "{line}").and_then(|()| {
            if self.flush_each {
                self.out.flush()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            self.error = Some(e);
        }
    }

    fn should_stop(&self) -> bool {
        (self.once && self.saved_any) || self.error.is_some() || INTERRUPTED.load(Ordering::Relaxed)
    }
}

pub(super) fn run(config: &HttpConfig) -> Result<(), AppError> {
    let events = events::start(&config.events)?;
    // Each index line goes out as a `file` event once it is written (sha256 known).
    let hook = events.is_enabled().then(|| {
        let events = events.clone();
        Box::new(move |entry: &IndexEntry| events.emit(entry)) as IndexHook
    });
    let extractor = Extractor::with_index_hook(
        ExtractConfig {
            dir: config.out.clone(),
            globs: config.extract.clone(),
            all: config.extract_all,
            community_id_seed: config.community_id_seed,
        },
        hook,
    )?;
    let mut source = capture::open(&config.input)?;
    if matches!(config.input, Input::Files(_)) {
        catch_sigint();
    }
    let printer = Printer {
        out: BufWriter::with_capacity(64 << 10, io::stdout().lock()),
        json: config.json,
        once: config.once,
        flush_each: matches!(config.input, Input::Live(_)),
        extractor,
        saved_any: false,
        error: None,
        events: events.clone(),
        community_id_seed: config.community_id_seed,
    };
    let analyzer = HttpAnalyzer::new(printer, Limits::default());
    // Every session also goes out as a `flow` event when it leaves the table.
    let mut tee = Tee::new(
        analyzer,
        FlowEvents::new(events.clone(), config.community_id_seed),
    );
    let memcap = config.flow.memcap;
    let outcome = match events.stats_interval() {
        Some(every) => pipeline::run_observed(
            source.as_mut(),
            &config.flow,
            &mut tee,
            every,
            &mut |tee, progress| {
                let saved = tee.first.listener().extractor.stats();
                events.emit(&events.stats_record(
                    progress,
                    memcap,
                    Some(tee.first.stats()),
                    Some(&saved),
                ));
            },
        ),
        None => pipeline::run(source.as_mut(), &config.flow, &mut tee),
    };
    let (stats, failed) = match outcome {
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
    let flushed = printer.out.flush();
    let ex = printer.extractor.stats();
    if events.is_enabled() {
        let last = Progress {
            stats: stats.clone(),
            ..Progress::default()
        };
        events.emit(&events.stats_record(&last, memcap, Some(&http), Some(&ex)));
    }
    let mut summary = format!(
        "sniffer: {} HTTP transactions ({} requests, {} responses, {} unanswered); \
         {} files saved in {} ({} bytes, {} incomplete, {} merged from 206 parts, {} kept raw)",
        http.transactions,
        http.requests,
        http.responses,
        http.unanswered,
        ex.saved,
        printer.extractor.dir().display(),
        ex.bytes,
        ex.incomplete,
        ex.merged,
        ex.kept_raw,
    );
    for (n, what) in [
        (http.malformed, "messages refused as malformed"),
        (ex.refused, "wanted bodies refused as malformed"),
        (http.incomplete_bodies, "bodies incomplete"),
        (http.decode_failures, "bodies not decoded"),
        (http.resyncs, "times parsing resynchronised"),
        (http.tunnels, "sessions tunnelled (CONNECT/Upgrade)"),
        (http.capped_sessions, "sessions capped"),
        (http.not_http, "sessions not HTTP"),
        (ex.write_errors, "write errors"),
    ] {
        if n > 0 {
            summary += &format!("; {n} {what}");
        }
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        summary += "; interrupted";
    }
    eprintln!("{summary}");
    eprintln!(
        "sniffer: {}",
        sniffer::output::flows::closing_summary(&stats)
    );
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
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
