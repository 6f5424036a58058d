//! `sniffer http` (the default command): one line per transaction, matching bodies saved.

use std::{
    io::{self, BufWriter, Write as _},
    sync::atomic::{AtomicBool, Ordering},
};

use sniffer::{
    capture::{self, Input},
    extract::{ExtractConfig, Extractor},
    http::{BodyEvent, HttpAnalyzer, HttpListener, Limits, Transaction},
    output::jsonl::TransactionRecord,
    pipeline,
};

use super::{AppError, config::HttpConfig};

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
        if self.error.is_some() {
            return;
        }
        let record = TransactionRecord::new(tx, saved.as_ref(), self.extractor.dir());
        let line = if self.json {
            record.json()
        } else {
            record.human()
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
    let extractor = Extractor::new(ExtractConfig {
        dir: config.out.clone(),
        globs: config.extract.clone(),
        all: config.extract_all,
    })?;
    let mut source = capture::open(&config.source.input)?;
    if matches!(config.source.input, Input::Files(_)) {
        catch_sigint();
    }
    let printer = Printer {
        out: BufWriter::with_capacity(64 << 10, io::stdout().lock()),
        json: config.json,
        once: config.once,
        flush_each: matches!(config.source.input, Input::Live(_)),
        extractor,
        saved_any: false,
        error: None,
    };
    let mut analyzer = HttpAnalyzer::new(printer, Limits::default());
    let (stats, failed) = match pipeline::run_filtered(
        source.as_mut(),
        config.source.filter.as_ref(),
        &config.flow,
        &mut analyzer,
    ) {
        Ok(stats) => (stats, None),
        Err(e) => (*e.stats, Some(e.source)),
    };
    // Bodies still open (the pipeline ends every session; this is the safety net) are
    // closed and indexed as incomplete.
    analyzer.finish();
    let http = analyzer.stats().clone();
    let mut printer = analyzer.into_listener();
    printer.extractor.finish();
    let flushed = printer.out.flush();
    let ex = printer.extractor.stats();
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
