//! Drives a packet source through decode, the flow table and reassembly into a listener.
//!
//! ```text
//! PacketSource ─Frame─> decode::Decoder ─Segment─> flow::FlowTable ─events─> Listener
//! ```
//!
//! A live source that has nothing to deliver says so about once a second
//! ([`Poll::Idle`]), and the flow table is then expired at the wall-clock time, so sessions
//! on a quiet device still time out, as in Zeek.
//!
//! At the end of the capture, or when the source fails, or when the listener asks to stop
//! ([`Listener::should_stop`]), every open session is ended (its holes declared gaps), so
//! partial results are kept; the counters of every stage are returned either way.

use std::time::{Duration, Instant};

use crate::{
    capture::{CaptureError, PacketSource, Poll, SourceStats},
    decode::{DecodeStats, Decoder},
    flow::{FlowConfig, FlowStats, FlowTable},
    listener::Listener,
    wire::Timestamp,
};

/// What every stage counted: shown at the end so nothing is lost silently.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PipelineStats {
    /// The packet source.
    pub source: SourceStats,
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

/// The counters at one moment of a run, for a periodic look ([`run_observed`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every stage's counters so far.
    pub stats: PipelineStats,
    /// Sessions in the table now.
    pub live_sessions: u64,
    /// Bytes buffered for reassembly now.
    pub memory: u64,
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
    drive(source, flow, listener, None)
}

/// Frames between two looks at the clock in [`run_observed`] (a quiet live source is
/// looked at on each idle tick too).
const CLOCK_EVERY: u32 = 16;

/// Like [`run`], and hands the listener and the counters so far to `observe` about every
/// `every` of wall-clock time (looked at between frames, and when a live source is idle).
///
/// # Errors
/// As [`run`].
pub fn run_observed<L: Listener + ?Sized>(
    source: &mut dyn PacketSource,
    flow: &FlowConfig,
    listener: &mut L,
    every: Duration,
    observe: &mut dyn FnMut(&mut L, &Progress),
) -> Result<PipelineStats, PipelineError> {
    drive(source, flow, listener, Some((every, observe)))
}

/// The counters of every stage now.
fn counters(
    source: &dyn PacketSource,
    decoder: &Decoder,
    table: &FlowTable,
    stopped_early: bool,
) -> PipelineStats {
    PipelineStats {
        source: source.stats(),
        decode: decoder.stats().clone(),
        flow: table.stats().clone(),
        stopped_early,
    }
}

type Observer<'a, L> = (Duration, &'a mut dyn FnMut(&mut L, &Progress));

fn drive<L: Listener + ?Sized>(
    source: &mut dyn PacketSource,
    flow: &FlowConfig,
    listener: &mut L,
    mut observer: Option<Observer<'_, L>>,
) -> Result<PipelineStats, PipelineError> {
    let mut next_look = Instant::now();
    let mut frames_since_look = 0u32;
    let mut look = |source: &dyn PacketSource,
                    decoder: &Decoder,
                    table: &FlowTable,
                    listener: &mut L,
                    idle: bool| {
        let Some((every, observe)) = observer.as_mut() else {
            return;
        };
        frames_since_look += 1;
        if !idle && frames_since_look < CLOCK_EVERY {
            return;
        }
        frames_since_look = 0;
        let now = Instant::now();
        if now < next_look {
            return;
        }
        next_look = now + *every;
        let progress = Progress {
            stats: counters(source, decoder, table, false),
            live_sessions: table.len() as u64,
            memory: table.memory(),
        };
        observe(listener, &progress);
    };
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
                look(&*source, &decoder, &table, listener, true);
                continue;
            }
            Ok(Poll::End) => break Ok(()),
            Err(e) => break Err(e),
        };
        last_ts = last_ts.max(frame.ts);
        if let Some(segment) = decoder.decode(&frame) {
            table.process(&segment, listener);
        }
        look(&*source, &decoder, &table, listener, false);
    };
    table.finish(last_ts, listener);
    let stats = counters(&*source, &decoder, &table, stopped_early);
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
    fn issue15_the_observer_sees_the_counters_every_16_frames_and_when_idle() {
        let steps = (0..40u16)
            .map(|i| {
                let mut syn = Vec::new();
                PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                    .tcp(40000 + i, 80, 1, 1024)
                    .syn()
                    .write(&mut syn, &[])
                    .unwrap();
                Ok((Timestamp(u64::from(i) + 1), syn))
            })
            .chain([Err(Timestamp(100))])
            .collect();
        let mut source = Script { steps, at: 0 };
        let mut seen = Vec::new();
        // A zero interval: every chance to look is taken.
        let stats = run_observed(
            &mut source,
            &FlowConfig::default(),
            &mut Ends::default(),
            Duration::ZERO,
            &mut |_, p| seen.push((p.live_sessions, p.stats.flow.sessions, p.memory)),
        )
        .unwrap();
        assert_eq!(seen, [(16, 16, 0), (32, 32, 0), (40, 40, 0)]);
        assert_eq!(stats.flow.sessions, 40);
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
