//! The health line: one [`StatsRecord`] of what a run has counted so far, for a journal,
//! a log shipper (`--stats-interval`, on stderr) or the event destinations
//! (`--events-stats-interval`).
//!
//! ```json
//! {"v":1,"type":"stats","ts":1795695540.062181,"duration":60.0,"kernel_seen":…,"frames":10530,…}
//! ```

use std::time::Duration;

use crate::{
    extract::ExtractStats, http::HttpStats, pipeline::Progress, records::StatsRecord,
    wire::Timestamp,
};

/// What the stages above the pipeline add to a health line, when the command has them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extra<'a> {
    /// HTTP counters (`sniffer http`).
    pub http: Option<&'a HttpStats>,
    /// The extractor's counters.
    pub files: Option<&'a ExtractStats>,
    /// The disk budget, if any.
    pub budget: Option<u64>,
    /// Events sent and dropped, over every destination.
    pub events: (u64, u64),
}

/// The health line for `progress` at `now`, `elapsed` into the run.
pub fn stats_record(
    now: Timestamp,
    elapsed: Duration,
    progress: &Progress,
    memcap: u64,
    extra: &Extra<'_>,
) -> StatsRecord {
    let p = &progress.stats;
    let k = p.source.kernel.as_ref();
    StatsRecord {
        ts: now,
        duration: (elapsed.as_secs_f64() * 1e6).round() / 1e6,
        kernel_seen: k.map(|k| k.seen),
        kernel_matched: k.map(|k| k.matched),
        kernel_ring_full: k.map(|k| k.ring_full),
        kernel_copy_failed: k.map(|k| k.copy_failed),
        dropped_packets: k.map(|k| k.ring_full + k.copy_failed),
        frames: p.source.frames,
        captured_bytes: p.source.bytes,
        truncated: p.source.truncated,
        sessions: p.flow.sessions,
        sessions_live: progress.live_sessions,
        evicted: p.flow.evicted + p.flow.evicted_memcap,
        gaps: p.flow.gaps,
        gap_bytes: p.flow.gap_bytes,
        memory_bytes: progress.memory_bytes,
        memcap_bytes: memcap,
        transactions: extra.http.map(|h| h.transactions),
        files: extra.files.map(|f| f.saved),
        files_incomplete: extra.files.map(|f| f.incomplete),
        files_failed: extra.files.map(|f| f.failed),
        file_bytes: extra.files.map(|f| f.bytes),
        disk_budget_bytes: extra.budget,
        events_sent: extra.events.0,
        events_dropped: extra.events.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{capture::KernelCounters, pipeline::PipelineStats, records::Record as _};

    #[test]
    fn issue12_stats_line_follows_the_json_vocabulary() {
        let mut progress = Progress {
            stats: PipelineStats::default(),
            live_sessions: 3,
            memory_bytes: 4096,
        };
        progress.stats.source.frames = 10;
        progress.stats.source.bytes = 1500;
        progress.stats.source.kernel = Some(KernelCounters {
            seen: 20,
            matched: 12,
            ring_full: 1,
            copy_failed: 1,
            ..KernelCounters::default()
        });
        progress.stats.flow.sessions = 5;
        progress.stats.flow.evicted = 1;
        progress.stats.flow.evicted_memcap = 1;
        let files = ExtractStats {
            saved: 2,
            incomplete: 1,
            bytes: 999,
            ..ExtractStats::default()
        };
        let now = Timestamp::from_parts(1_795_695_540, 62_181_999);
        let extra = Extra {
            files: Some(&files),
            ..Extra::default()
        };
        let line = stats_record(
            now,
            Duration::from_millis(60_500),
            &progress,
            256 << 20,
            &extra,
        )
        .to_json();
        assert!(
            line.starts_with(r#"{"v":1,"type":"stats","ts":1795695540.062181,"duration":60.5,"#),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["dropped_packets"], 2);
        assert_eq!(v["kernel_matched"], 12);
        assert_eq!(v["sessions_live"], 3);
        assert_eq!(v["evicted"], 2);
        assert_eq!(v["memory_bytes"], 4096);
        assert_eq!(v["memcap_bytes"], 256 << 20);
        assert_eq!(v["files"], 2);
        assert_eq!(v["file_bytes"], 999);
        assert!(v["disk_budget_bytes"].is_null());
        // A file run of `flows`: no kernel, no files, same keys.
        progress.stats.source.kernel = None;
        let flows = stats_record(now, Duration::ZERO, &progress, 1, &Extra::default()).to_json();
        let w: serde_json::Value = serde_json::from_str(&flows).unwrap();
        assert!(w["kernel_seen"].is_null() && w["dropped_packets"].is_null());
        assert!(w["files"].is_null());
        let keys =
            |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&v), keys(&w));
    }
}
