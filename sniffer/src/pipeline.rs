//! Drives a packet source through decode, the flow table and reassembly into a listener.
//!
//! ```text
//! PacketSource ─Frame─> decode::Decoder ─Segment─> flow::FlowTable ─events─> Listener
//! ```
//!
//! At the end of the capture, or when the source fails, or when the listener asks to stop
//! ([`Listener::should_stop`]), every open session is ended (its holes declared gaps), so
//! partial results are kept; the counters of every stage are returned either way.

use crate::{
    capture::{CaptureError, PacketSource, SourceStats},
    config::FlowConfig,
    decode::{DecodeStats, Decoder},
    flow::{FlowStats, FlowTable},
    listener::Listener,
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
    let mut decoder = Decoder::new();
    let mut table = FlowTable::new(flow);
    let mut last_ts = crate::capture::Timestamp(0);
    let mut stopped_early = false;
    let outcome = loop {
        if listener.should_stop() {
            stopped_early = true;
            break Ok(());
        }
        let frame = match source.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        last_ts = last_ts.max(frame.ts);
        if let Some(segment) = decoder.decode(&frame) {
            table.process(&segment, listener);
        }
    };
    table.finish(last_ts, listener);
    let stats = PipelineStats {
        source: source.stats(),
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
