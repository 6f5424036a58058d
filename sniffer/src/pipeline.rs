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
//!
//! [`run_with_ticks`] also hands the [`Progress`] so far to a callback at intervals of
//! wall-clock time (a health line for monitoring): the clock is looked at on each idle
//! tick of a live source and every [`CLOCK_EVERY`] frames, so the callback runs on live
//! and offline input alike, and costs nothing per frame but a counter.

use std::time::{Duration, Instant};

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

/// The pipeline at a tick of [`run_with_ticks`]: the counters so far, and what the
/// session table holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every stage's counters so far (a live source's kernel counters read now).
    pub stats: PipelineStats,
    /// Sessions in the table now.
    pub live_sessions: u64,
    /// Bytes the table accounts against its memcap now.
    pub memory_bytes: u64,
}

/// Frames between two looks at the clock while frames keep coming.
pub const CLOCK_EVERY: u32 = 64;

/// A tick this close to due counts as due: a live source's idle ticks, which started a
/// moment before the ticker, would otherwise just miss it and make it a whole idle tick
/// late.
const EARLY: Duration = Duration::from_millis(100);

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
    run_with(source, flow, listener, Extras::default())
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
    run_with(
        source,
        flow,
        listener,
        Extras {
            filter,
            ..Extras::default()
        },
    )
}

/// Like [`run`], and every `every` of wall-clock time (at the first idle tick or
/// [`CLOCK_EVERY`]-th frame after it is due), `on_tick` gets the progress so far and the
/// listener.
///
/// # Errors
/// As [`run`].
pub fn run_with_ticks<L: Listener + ?Sized>(
    source: &mut dyn PacketSource,
    flow: &FlowConfig,
    listener: &mut L,
    every: Duration,
    on_tick: &mut dyn FnMut(&Progress, &mut L),
) -> Result<PipelineStats, PipelineError> {
    run_with(
        source,
        flow,
        listener,
        Extras {
            ticks: Some((every, on_tick)),
            ..Extras::default()
        },
    )
}

/// A callback at intervals: the progress so far, and the listener.
pub type OnTick<'a, L> = &'a mut dyn FnMut(&Progress, &mut L);

/// What a run may add to a plain [`run`].
pub struct Extras<'a, L: ?Sized> {
    /// Only the frames this matches go on to decode (see [`run_filtered`]).
    pub filter: Option<&'a Filter>,
    /// Every `.0` of wall-clock time, `.1` gets the progress so far and the listener (see
    /// [`run_with_ticks`]).
    pub ticks: Option<(Duration, OnTick<'a, L>)>,
    /// Stop after this many frames went on to decode (the filter's matches), as
    /// tcpdump's `-c` does.
    pub limit: Option<u64>,
}

impl<L: ?Sized> Default for Extras<'_, L> {
    fn default() -> Self {
        Self {
            filter: None,
            ticks: None,
            limit: None,
        }
    }
}

/// When [`run_with_ticks`] calls back next.
struct Ticker<'a, L: ?Sized> {
    every: Duration,
    next: Instant,
    /// Frames since the clock was last looked at.
    frames: u32,
    call: &'a mut dyn FnMut(&Progress, &mut L),
}

impl<L: Listener + ?Sized> Ticker<'_, L> {
    /// Calls back if a tick is due; `frame` says whether this is a frame (counted, and the
    /// clock looked at every [`CLOCK_EVERY`]) or an idle tick (the clock looked at).
    fn check(&mut self, frame: bool, listener: &mut L, progress: impl FnOnce(&L) -> Progress) {
        if frame {
            self.frames += 1;
            if self.frames < CLOCK_EVERY {
                return;
            }
        }
        self.frames = 0;
        let now = Instant::now();
        if now + EARLY < self.next {
            return;
        }
        self.next += self.every;
        if self.next <= now {
            self.next = now + self.every;
        }
        let p = progress(listener);
        (self.call)(&p, listener);
    }
}

/// [`run`] with its [`Extras`]: every other `run_*` comes here.
///
/// # Errors
/// As [`run`].
pub fn run_with<L: Listener + ?Sized>(
    source: &mut dyn PacketSource,
    flow: &FlowConfig,
    listener: &mut L,
    extras: Extras<'_, L>,
) -> Result<PipelineStats, PipelineError> {
    let filter = extras.filter;
    let mut left = extras.limit;
    let mut ticker = extras.ticks.map(|(every, call)| Ticker {
        every,
        next: Instant::now() + every,
        frames: 0,
        call,
    });
    let mut filtered = FilterStats::default();
    let mut decoder = Decoder::new();
    let mut table = FlowTable::new(flow);
    let mut last_ts = Timestamp(0);
    let mut stopped_early = false;
    let outcome = loop {
        if listener.should_stop() || left == Some(0) {
            stopped_early = true;
            break Ok(());
        }
        let is_frame = match source.poll() {
            Ok(Poll::Frame(frame)) => {
                last_ts = last_ts.max(frame.ts);
                let wanted = filter.is_none_or(|f| {
                    let m = f.matches(&frame);
                    if m {
                        filtered.matched += 1;
                    } else {
                        filtered.rejected += 1;
                    }
                    m
                });
                if wanted {
                    if let Some(n) = &mut left {
                        *n -= 1;
                    }
                    if let Some(segment) = decoder.decode(&frame) {
                        table.process(&segment, listener);
                    }
                }
                true
            }
            Ok(Poll::Idle(now)) => {
                // A quiet live device: sessions still time out.
                last_ts = last_ts.max(now);
                table.expire(now, listener);
                false
            }
            Ok(Poll::End) => break Ok(()),
            Err(e) => break Err(e),
        };
        if let Some(ticker) = &mut ticker {
            ticker.check(is_frame, listener, |listener| Progress {
                stats: PipelineStats {
                    source: source.stats(),
                    filter: filter.map(|_| filtered.clone()),
                    decode: decoder.stats().clone(),
                    flow: table.stats().clone(),
                    stopped_early: false,
                },
                live_sessions: table.len() as u64,
                memory_bytes: table.memory() + listener.memory_in_use(),
            });
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

    /// With a zero interval every look at the clock is a tick: every 64th frame, and each
    /// idle tick (which starts the frame count again). Each tick sees the counters so far
    /// and the table as it is.
    #[test]
    fn issue12_ticks_come_every_64_frames_and_on_idle() {
        let mut syn = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 1024)
            .syn()
            .write(&mut syn, &[])
            .unwrap();
        let frame = |i: u64| Ok((Timestamp(i * 1000), syn.clone()));
        let mut steps: Vec<_> = (0..130).map(frame).collect();
        steps.extend([Err(Timestamp(200_000)), Err(Timestamp(300_000))]);
        steps.extend((300..370).map(frame));
        let mut source = Script { steps, at: 0 };
        let mut seen = Vec::new();
        let stats = run_with_ticks(
            &mut source,
            &FlowConfig::default(),
            &mut Ends::default(),
            Duration::ZERO,
            &mut |p: &Progress, _: &mut Ends| {
                seen.push((p.stats.flow.segments, p.live_sessions));
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            [(64, 1), (128, 1), (130, 1), (130, 1), (194, 1)],
            "(segments, live sessions) at each tick"
        );
        assert_eq!(stats.flow.segments, 200);
    }
}
