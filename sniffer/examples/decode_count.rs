//! Read and decode capture files, count, print a summary: decoding alone, for benchmarks.
//!
//! `cargo run --release --example decode_count -- FILE... [--json] [--filter EXPR]`
//!
//! All FILE arguments are read as one capture (merged in timestamp order). Prints one line:
//! frames, TCP segments, payload bytes, input bytes, seconds and GB/s of input; with
//! `--json` the decoder's and the source's counters as JSON on a second line. With
//! `--filter`, only the frames the pcap-filter expression selects are decoded (as
//! `sniffer -r FILE EXPR` does), and the frames it rejected are counted too. Exit code 3
//! when a file is damaged (after printing what was read), 1 on other errors, 2 on a bad
//! expression.

use std::{path::PathBuf, time::Instant};

use sniffer::{PacketSource as _, capture::file::FileSource, decode::Decoder, filter::Filter};

fn main() -> std::process::ExitCode {
    let mut json = false;
    let mut filter = None;
    let mut paths = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--json" {
            json = true;
        } else if arg == "--filter" {
            let text = args.next().unwrap_or_default();
            match Filter::parse(&text.to_string_lossy()) {
                Ok(f) => filter = Some(f),
                Err(e) => {
                    eprintln!("decode_count: filter: {e}");
                    return std::process::ExitCode::from(2);
                }
            }
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    if paths.is_empty() {
        eprintln!("usage: decode_count FILE... [--json] [--filter EXPR]");
        return std::process::ExitCode::from(2);
    }
    let start = Instant::now();
    let mut source = match FileSource::open(&paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("decode_count: {e}");
            return std::process::ExitCode::from(if e.is_damage() { 3 } else { 1 });
        }
    };
    let mut decoder = Decoder::new();
    let mut segments = 0u64;
    let mut payload = 0u64;
    let mut rejected = 0u64;
    let mut result = Ok(());
    loop {
        match source.next_frame() {
            Ok(Some(frame)) => {
                if filter.as_ref().is_some_and(|f| !f.matches(&frame)) {
                    rejected += 1;
                    continue;
                }
                if let Some(segment) = decoder.decode(&frame) {
                    segments += 1;
                    payload += segment.payload.len() as u64;
                }
            }
            Ok(None) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = source.stats();
    let input = source.bytes_read();
    let rejected = if filter.is_some() {
        format!(" rejected_by_filter={rejected}")
    } else {
        String::new()
    };
    println!(
        "frames={}{rejected} segments={segments} payload_bytes={payload} input_bytes={input} secs={secs:.3} gb_per_s={:.2}",
        stats.frames,
        input as f64 / secs / 1e9
    );
    if json {
        println!(
            "{}",
            serde_json::json!({ "source": stats, "decode": decoder.stats() })
        );
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decode_count: {e}");
            let damaged = matches!(&e, sniffer::capture::CaptureError::File(f) if f.is_damage());
            std::process::ExitCode::from(if damaged { 3 } else { 1 })
        }
    }
}
