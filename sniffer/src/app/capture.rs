//! `sniffer capture`: write the packets the filter selected to a pcap or pcapng file, then
//! print what was counted on the way (kernel filter and userspace) to stderr.
//!
//! With `-r FILE` it copies a dump into the chosen format: the packets the filter (an
//! expression or `--port`) selects, or, without one, every packet.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
};

use sniffer::capture::{
    Input, LinkType, SourceStats,
    writer::{Format, PcapWriter, WriterError},
};

use super::{AppError, config::CaptureConfig, now, privilege, stop};

/// Output buffer for small packets; larger ones (TSO/GRO skbs) bypass it in one `writev`
/// instead of being copied into it.
const OUT_BUF: usize = 32 << 10;

pub(super) fn run(config: &CaptureConfig) -> Result<(), AppError> {
    let mut source = stop::open(&config.source.input)?;
    let filter = config.source.filter.as_ref();
    let target = config.write.display().to_string();
    let out: Box<dyn Write> = if config.write.as_os_str() == "-" {
        Box::new(BufWriter::with_capacity(OUT_BUF, io::stdout().lock()))
    } else {
        let file = File::create(&config.write).map_err(|source| AppError::Io {
            what: format!("creating {target}"),
            source,
        })?;
        Box::new(BufWriter::with_capacity(OUT_BUF, file))
    };
    // The device and the file are open: nothing privileged is left to do.
    privilege::drop_privileges(&config.run_as)?;
    let (snaplen, if_name) = match &config.source.input {
        Input::Live(live) => (live.snaplen, Some(live.iface.as_str())),
        Input::Files(_) => (262_144, None),
    };
    let format = if config.pcapng {
        Format::Pcapng
    } else {
        Format::Pcap
    };
    let mut writer = PcapWriter::new(out, format, snaplen, LinkType::Ethernet, if_name);
    if let Input::Live(live) = &config.source.input {
        eprintln!(
            "sniffer: capturing on {} ({}) into {target}; Ctrl-C stops",
            live.iface, config.source.selects
        );
    }
    let writer_err = |e: WriterError| AppError::Io {
        what: target.clone(),
        source: match e {
            WriterError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        },
    };

    // Frames written before an error are kept: the file is finished either way.
    let mut result = Ok(());
    let mut rejected = 0;
    while config.source.count.is_none_or(|n| writer.frames() < n) {
        match source.next_frame() {
            Ok(Some(frame)) => {
                if filter.is_some_and(|f| !f.matches(&frame)) {
                    rejected += 1;
                    continue;
                }
                if let Err(e) = writer.write_frame(&frame) {
                    result = Err(writer_err(e));
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        }
    }
    let stats = source.stats();
    let written = writer.frames();
    let finished = writer
        .write_stats(&stats, now())
        .and_then(|()| writer.finish().map(drop))
        .map_err(writer_err);
    let rejected = filter.map(|_| rejected);
    eprint!("{}", report(&stats, rejected, written, &target));
    if stop::requested() {
        eprintln!("sniffer: interrupted: {target} holds every packet handled before the signal");
    }
    result.and(finished)
}

/// The closing report: kernel counters (live capture), then what userspace got, rejected
/// (when it filtered) and wrote.
fn report(stats: &SourceStats, rejected: Option<u64>, written: u64, target: &str) -> String {
    let mut s = String::new();
    if let Some(k) = &stats.kernel {
        s += &format!(
            "sniffer: kernel filter: {} packets seen, {} matched ({} bytes), {} ring-buffer drops, \
             {} copy failures, {} truncated at snaplen, {} non-first IPv4/IPv6 fragments\n",
            k.seen,
            k.matched,
            k.matched_bytes,
            k.ring_full,
            k.copy_failed,
            k.truncated,
            k.non_first_fragment
        );
    }
    let rejected = rejected.map_or_else(String::new, |n| format!("{n} rejected by the filter, "));
    s += &format!(
        "sniffer: userspace: {} packets received ({} bytes, {} truncated), {rejected}{} written to {}\n",
        stats.frames, stats.bytes, stats.truncated, written, target
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use sniffer::capture::KernelCounters;

    #[test]
    fn report_names_every_counter() {
        let stats = SourceStats {
            frames: 9,
            bytes: 900,
            truncated: 1,
            kernel: Some(KernelCounters {
                seen: 100,
                matched: 10,
                matched_bytes: 1000,
                ring_full: 1,
                copy_failed: 0,
                truncated: 1,
                non_first_fragment: 2,
            }),
        };
        assert_eq!(
            report(&stats, None, 9, "out.pcap"),
            "sniffer: kernel filter: 100 packets seen, 10 matched (1000 bytes), 1 ring-buffer drops, \
             0 copy failures, 1 truncated at snaplen, 2 non-first IPv4/IPv6 fragments\n\
             sniffer: userspace: 9 packets received (900 bytes, 1 truncated), 9 written to out.pcap\n"
        );
        let files = SourceStats {
            kernel: None,
            ..stats
        };
        assert_eq!(
            report(&files, None, 9, "-"),
            "sniffer: userspace: 9 packets received (900 bytes, 1 truncated), 9 written to -\n"
        );
        assert_eq!(
            report(&files, Some(3), 6, "-"),
            "sniffer: userspace: 9 packets received (900 bytes, 1 truncated), 3 rejected by the filter, \
             6 written to -\n"
        );
    }
}
