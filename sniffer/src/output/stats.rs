//! The health line (`--stats-interval`): one JSON record of what a run has counted so
//! far, for a journal or a log shipper to follow.
//!
//! ```json
//! {"v":1,"type":"stats","ts":1795695540.062181,"duration":60.0,"frames":10530,…}
//! ```
//!
//! Fields that do not apply to a run (the kernel counters of a file, the files of
//! `flows`, a disk budget that was not set) are `null`, so every line has the same keys.

use std::time::Duration;

use crate::{capture::KernelCounters, extract::ExtractStats, pipeline::Progress, wire::Timestamp};

/// One health line.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StatsRecord {
    /// Always 1.
    pub v: u8,
    /// Always `stats`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the line was written, seconds since the Unix epoch (microseconds).
    pub ts: f64,
    /// Seconds since the run started.
    pub duration: f64,
    /// Frames the source delivered.
    pub frames: u64,
    /// Captured bytes the source delivered.
    pub captured_bytes: u64,
    /// The kernel program's counters (live capture).
    pub kernel: Option<KernelCounters>,
    /// Packets the kernel matched and could not hand over (ring full, failed copies).
    pub dropped_packets: Option<u64>,
    /// Sessions opened.
    pub sessions: u64,
    /// Sessions in the table now.
    pub live_sessions: u64,
    /// Sessions ended early to stay within the session limit or the memcap.
    pub evicted_sessions: u64,
    /// Gaps declared, and the bytes in them.
    pub gaps: u64,
    /// Bytes missing in declared gaps.
    pub gap_bytes: u64,
    /// Memory the session table accounts now.
    pub memory_bytes: u64,
    /// Its bound (`--memcap`).
    pub memcap_bytes: u64,
    /// Files saved (http).
    pub files_saved: Option<u64>,
    /// Of those, marked incomplete.
    pub files_incomplete: Option<u64>,
    /// Files that could not be created or written whole.
    pub files_failed: Option<u64>,
    /// Bytes written to saved files.
    pub disk_bytes: Option<u64>,
    /// The bound on the output directory, when one is set.
    pub disk_budget_bytes: Option<u64>,
}

/// What the extractor adds to a health line, when there is one.
#[derive(Clone, Copy, Debug)]
pub struct Files<'a> {
    /// Its counters so far.
    pub stats: &'a ExtractStats,
    /// The disk budget, if any.
    pub budget: Option<u64>,
}

impl StatsRecord {
    /// The line for `progress` at `now`, `elapsed` into the run.
    pub fn new(
        now: Timestamp,
        elapsed: Duration,
        progress: &Progress,
        memcap: u64,
        files: Option<Files<'_>>,
    ) -> Self {
        let s = &progress.stats;
        let kernel = s.source.kernel.clone();
        Self {
            v: 1,
            kind: "stats",
            ts: epoch_seconds(now),
            duration: (elapsed.as_secs_f64() * 1e6).round() / 1e6,
            frames: s.source.frames,
            captured_bytes: s.source.bytes,
            dropped_packets: kernel.as_ref().map(|k| k.ring_full + k.copy_failed),
            kernel,
            sessions: s.flow.sessions,
            live_sessions: progress.live_sessions,
            evicted_sessions: s.flow.evicted + s.flow.evicted_memcap,
            gaps: s.flow.gaps,
            gap_bytes: s.flow.gap_bytes,
            memory_bytes: progress.memory_bytes,
            memcap_bytes: memcap,
            files_saved: files.map(|f| f.stats.saved),
            files_incomplete: files.map(|f| f.stats.incomplete),
            files_failed: files.map(|f| f.stats.failed),
            disk_bytes: files.map(|f| f.stats.bytes),
            disk_budget_bytes: files.and_then(|f| f.budget),
        }
    }

    /// The JSON line (no newline).
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a stats record always serialises")
    }
}

/// `SECONDS.MICROS` as a JSON number: parsed from its decimal text, so that it prints
/// back as exactly those digits (a microsecond is several ulps of an f64 this size).
fn epoch_seconds(t: Timestamp) -> f64 {
    format!("{}.{:06}", t.secs(), t.subsec_nanos() / 1000)
        .parse()
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineStats;

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
        let line = StatsRecord::new(
            now,
            Duration::from_millis(60_500),
            &progress,
            256 << 20,
            Some(Files {
                stats: &files,
                budget: None,
            }),
        )
        .json();
        assert!(
            line.starts_with(r#"{"v":1,"type":"stats","ts":1795695540.062181,"duration":60.5,"#),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["dropped_packets"], 2);
        assert_eq!(v["kernel"]["matched"], 12);
        assert_eq!(v["live_sessions"], 3);
        assert_eq!(v["evicted_sessions"], 2);
        assert_eq!(v["memory_bytes"], 4096);
        assert_eq!(v["memcap_bytes"], 256 << 20);
        assert_eq!(v["files_saved"], 2);
        assert_eq!(v["disk_bytes"], 999);
        assert!(v["disk_budget_bytes"].is_null());
        // A file run of `flows`: no kernel, no files, same keys.
        progress.stats.source.kernel = None;
        let flows = StatsRecord::new(now, Duration::ZERO, &progress, 1, None).json();
        let w: serde_json::Value = serde_json::from_str(&flows).unwrap();
        assert!(w["kernel"].is_null() && w["dropped_packets"].is_null());
        assert!(w["files_saved"].is_null());
        let keys =
            |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&v), keys(&w));
    }
}
