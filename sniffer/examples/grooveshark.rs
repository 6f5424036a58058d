//! The Rust twin of the original Perl Grooveshark listener (a Net::Analysis listener):
//! watch HTTP go by, print each response's URI and content type, dump the first audio
//! body to a file, and exit.
//!
//! ```text
//! cargo run --example grooveshark -- -r dump.pcap [OUT_FILE]
//! sudo target/debug/examples/grooveshark -i wlan1 [OUT_FILE]
//! ```
//!
//! It uses the event API directly: [`HttpListener::response_head`] asks for the body,
//! [`HttpListener::body`] streams it to disk, [`HttpListener::http_transaction`] ends it,
//! and [`HttpListener::should_stop`] stops the capture.

use std::{fs::File, io::Write as _, path::PathBuf, process::ExitCode};

use sniffer::{
    capture::{self, Input, KernelFilter, LiveOptions},
    flow::FlowConfig,
    http::{BodyEvent, HttpAnalyzer, HttpListener, Limits, Transaction},
    pipeline,
};

struct Grooveshark {
    out: PathBuf,
    /// The body being dumped: its transaction (stream, number) and file.
    file: Option<((u64, u64), File)>,
    written: u64,
    done: bool,
}

impl HttpListener for Grooveshark {
    fn response_head(&mut self, tx: &Transaction) -> bool {
        let ct = tx
            .response
            .as_ref()
            .and_then(sniffer::http::Response::content_type);
        println!(
            "{} {}",
            tx.url().unwrap_or_else(|| "(request not seen)".into()),
            ct.as_deref().unwrap_or("-")
        );
        if self.file.is_some() || self.done || !ct.is_some_and(|c| c.starts_with("audio/")) {
            return false;
        }
        match File::create_new(&self.out) {
            Ok(f) => {
                self.file = Some(((tx.stream, tx.number), f));
                true
            }
            Err(e) => {
                eprintln!("grooveshark: {}: {e}", self.out.display());
                false
            }
        }
    }

    fn body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        let Some((id, f)) = &mut self.file else {
            return;
        };
        if *id != (tx.stream, tx.number) {
            return;
        }
        let bytes = match event {
            // Identity bodies come as raw bytes; coded ones also as decoded bytes.
            BodyEvent::Raw { bytes, .. } if tx.body.codings.is_empty() => bytes,
            BodyEvent::Decoded { bytes, .. } => bytes,
            BodyEvent::Gap { len, .. } => {
                eprintln!("grooveshark: {len} bytes lost in the capture");
                return;
            }
            _ => return,
        };
        if let Err(e) = f.write_all(bytes) {
            eprintln!("grooveshark: {}: {e}", self.out.display());
            self.file = None;
            self.done = true;
        }
        self.written += bytes.len() as u64;
    }

    fn http_transaction(&mut self, tx: &Transaction) {
        if self
            .file
            .as_ref()
            .is_some_and(|(id, _)| *id == (tx.stream, tx.number))
        {
            self.file = None;
            println!(
                "dumped {} bytes of audio to {}{}",
                self.written,
                self.out.display(),
                if tx.body.complete {
                    ""
                } else {
                    " (incomplete)"
                }
            );
            self.done = true;
        }
    }

    fn should_stop(&self) -> bool {
        self.done
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let input = match args.first().map(String::as_str) {
        Some("-r") if args.len() >= 2 => Input::Files(vec![args[1].clone().into()]),
        Some("-i") if args.len() >= 2 => Input::Live(LiveOptions {
            iface: args[1].clone(),
            filter: KernelFilter::ports(&[80]),
            snaplen: 65535,
            ring_bytes: 64 << 20,
        }),
        _ => {
            eprintln!("usage: grooveshark (-r FILE | -i DEV) [OUT_FILE]");
            return ExitCode::from(2);
        }
    };
    let out = args
        .get(2)
        .map_or_else(|| "grooveshark.mp3".into(), PathBuf::from);
    let listener = Grooveshark {
        out,
        file: None,
        written: 0,
        done: false,
    };
    let mut source = match capture::open(&input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("grooveshark: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut analyzer = HttpAnalyzer::new(listener, Limits::default());
    let result = pipeline::run(source.as_mut(), &FlowConfig::default(), &mut analyzer);
    analyzer.finish();
    if let Err(e) = result {
        eprintln!("grooveshark: {e}");
        return ExitCode::FAILURE;
    }
    if analyzer.listener().done {
        ExitCode::SUCCESS
    } else {
        eprintln!("grooveshark: no audio seen");
        ExitCode::FAILURE
    }
}
