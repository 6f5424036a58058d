//! Drives a packet source through decode, the flow table and reassembly into a listener.
//!
//! ```text
//! PacketSource ─Frame─> [filter::Filter] ─Frame─> decode::Decoder ─Segment─> flow::FlowTable ─events─> Listener
//! ```
//!
//! A filter ([`run_filtered`]) applies to the raw frame, before decode, as tcpdump's does;
//! what it rejects is counted ([`PipelineStats::filter`]).
//!
//! A live source that has nothing to deliver says so about once a second
//! ([`Poll::Idle`]), and the flow table is then expired at the wall-clock time, so sessions
//! on a quiet device still time out, as in Zeek.
//!
//! At the end of the capture, or when the source fails, or when the listener asks to stop
//! ([`Listener::should_stop`]), every open session is ended (its holes declared gaps), so
//! partial results are kept; the counters of every stage are returned either way.

use crate::{
    capture::{CaptureError, PacketSource, Poll, SourceStats},
    decode::{DecodeStats, Decoder},
    filter::{Filter, FilterStats},
    flow::{FlowConfig, FlowStats, FlowTable},
    listener::Listener,
    wire::Timestamp,
};

/// What every stage counted: shown at the end so nothing is lost silently.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PipelineStats {
    /// The packet source.
    pub source: SourceStats,
    /// The userspace filter, when there was one.
    pub filter: Option<FilterStats>,
    /// Frames → segments.
    pub decode: DecodeStats,
    /// Sessions and reassembly.
    pub flow: FlowStats,
    /// The listener asked to stop before the end of the input.
    pub stopped_early: bool,
}

/// The source failed; everything before the failure was processed, and its sessions ended.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct PipelineError {
    /// What was counted up to the failure.
    pub stats: Box<PipelineStats>,
    /// The failure.
    #[source]
    pub source: CaptureError,
}

/// Run `source` to its end through decode and reassembly into `listener`.
///
/// # Errors
/// [`PipelineError`] when the source fails; it carries the counters, and every session
/// was ended first, so the listener's results stand.
pub fn run<L: Listener + ?Sized>(
    source: &mut dyn PacketSource,
    flow: &FlowConfig,
    listener: &mut L,
) -> Result<PipelineStats, PipelineError> {
    run_filtered(source, None, flow, listener)
}

/// [`run`], with only the frames `filter` matches going on to decode (pcap-filter's
/// `tcp and (EXPR)` on the raw frame; see [`crate::filter`]).
///
/// # Errors
/// As [`run`].
pub fn run_filtered<L: Listener + ?Sized>(
    source: &mut dyn PacketSource,
    filter: Option<&Filter>,
    flow: &FlowConfig,
    listener: &mut L,
) -> Result<PipelineStats, PipelineError> {
    let mut filtered = FilterStats::default();
    let mut decoder = Decoder::new();
    let mut table = FlowTable::new(flow);
    let mut last_ts = Timestamp(0);
    let mut stopped_early = false;
    let outcome = loop {
        if listener.should_stop() {
            stopped_early = true;
            break Ok(());
        }
        let frame = match source.poll() {
            Ok(Poll::Frame(frame)) => frame,
            Ok(Poll::Idle(now)) => {
                // A quiet live device: sessions still time out.
                last_ts = last_ts.max(now);
                table.expire(now, listener);
                continue;
            }
            Ok(Poll::End) => break Ok(()),
            Err(e) => break Err(e),
        };
        last_ts = last_ts.max(frame.ts);
        if let Some(filter) = filter {
            if !filter.matches(&frame) {
                filtered.rejected += 1;
                continue;
            }
            filtered.matched += 1;
        }
        if let Some(segment) = decoder.decode(&frame) {
            table.process(&segment, listener);
        }
    };
    table.finish(last_ts, listener);
    let stats = PipelineStats {
        source: source.stats(),
        filter: filter.map(|_| filtered),
        decode: decoder.stats().clone(),
        flow: table.stats().clone(),
        stopped_early,
    };
    match outcome {
        Ok(()) => Ok(stats),
        Err(source) => Err(PipelineError {
            stats: Box::new(stats),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;
    use crate::{
        capture::{Frame, LinkType},
        listener::{EndReason, SessionInfo},
    };

    /// Plays a script: frames (raw IPv4), quiet spells, then the end.
    struct Script {
        steps: Vec<Result<(Timestamp, Vec<u8>), Timestamp>>,
        at: usize,
    }

    impl PacketSource for Script {
        fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
            unreachable!("the pipeline polls")
        }

        fn poll(&mut self) -> Result<Poll<'_>, CaptureError> {
            let Some(step) = self.steps.get(self.at) else {
                return Ok(Poll::End);
            };
            self.at += 1;
            Ok(match step {
                Ok((ts, data)) => Poll::Frame(Frame {
                    ts: *ts,
                    link_type: LinkType::Raw,
                    data,
                    orig_len: data.len() as u32,
                }),
                Err(now) => Poll::Idle(*now),
            })
        }

        fn stats(&self) -> SourceStats {
            SourceStats::default()
        }
    }

    #[derive(Default)]
    struct Ends(Vec<(EndReason, Timestamp)>);

    impl Listener for Ends {
        fn session_end(&mut self, _: &SessionInfo, why: EndReason, ts: Timestamp) {
            self.0.push((why, ts));
        }
    }

    #[test]
    fn issue2_a_quiet_live_device_still_times_sessions_out() {
        let secs = |s: u64| Timestamp(s * 1_000_000_000);
        let mut syn = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 1024)
            .syn()
            .write(&mut syn, &[])
            .unwrap();
        let flow = FlowConfig::default();
        let idle = flow.idle_timeout.as_secs();
        // One SYN, then nothing but quiet spells: the last one is past the idle timeout.
        let mut source = Script {
            steps: vec![
                Ok((secs(100), syn)),
                Err(secs(100 + idle / 2)),
                Err(secs(100 + idle + 2)),
            ],
            at: 0,
        };
        let mut ends = Ends::default();
        let stats = run(&mut source, &flow, &mut ends).unwrap();
        assert_eq!(ends.0, vec![(EndReason::Timeout, secs(100 + idle + 2))]);
        assert_eq!(stats.flow.timed_out, 1);
    }
}
