//! The health line of a run, where it goes and when: on stderr every `--stats-interval`
//! (for a journal or a log shipper), to the event destinations every
//! `--events-stats-interval` and once more at the end. One tick of the pipeline serves
//! both: it comes as often as the more frequent of the two needs.

use std::time::{Duration, Instant};

use sniffer::{
    events::Events,
    output::stats::{Extra, stats_record},
    pipeline::{PipelineStats, Progress},
    records::Record as _,
};

/// When the next line is due, per consumer.
#[derive(Debug)]
pub(super) struct Health {
    started: Instant,
    memcap: u64,
    stderr: Option<(Duration, Instant)>,
    /// Counted on every line, whether or not `stats` records go to it.
    events: Events,
    events_due: Option<(Duration, Instant)>,
}

impl Health {
    /// Lines on stderr every `stderr`, and to `events` at its own interval (if enabled).
    pub(super) fn new(stderr: Option<Duration>, events: &Events, memcap: u64) -> Self {
        let started = Instant::now();
        Self {
            started,
            memcap,
            stderr: stderr.map(|every| (every, started + every)),
            events: events.clone(),
            events_due: events
                .stats_interval()
                .map(|every| (every, started + every)),
        }
    }

    /// How often the pipeline must tick, if at all.
    pub(super) fn every(&self) -> Option<Duration> {
        let a = self.stderr.map(|(e, _)| e);
        let b = self.events_due.map(|(e, _)| e);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A tick: write the lines that are due (a tick a little early counts, as the
    /// pipeline's does).
    pub(super) fn tick(&mut self, progress: &Progress, extra: Extra<'_>) {
        let now = Instant::now();
        let due = |next: &mut Instant, every: Duration| {
            if now + Duration::from_millis(100) < *next {
                return false;
            }
            *next = (*next + every).max(now + every / 2);
            true
        };
        let stderr_due = self.stderr.as_mut().is_some_and(|(e, n)| due(n, *e));
        let events_due = self.events_due.as_mut().is_some_and(|(e, n)| due(n, *e));
        if !(stderr_due || events_due) {
            return;
        }
        let extra = Extra {
            events: self.events.counts(),
            ..extra
        };
        let record = stats_record(
            super::now(),
            self.started.elapsed(),
            progress,
            self.memcap,
            &extra,
        );
        if stderr_due {
            eprintln!("{}", record.to_json());
        }
        if events_due {
            self.events.emit(&record);
        }
    }

    /// The end of the run: one last line to the event destinations.
    pub(super) fn last(&self, stats: &PipelineStats, extra: Extra<'_>) {
        if !self.events.is_enabled() {
            return;
        }
        let events = &self.events;
        let progress = Progress {
            stats: stats.clone(),
            ..Progress::default()
        };
        let extra = Extra {
            events: events.counts(),
            ..extra
        };
        events.emit(&stats_record(
            super::now(),
            self.started.elapsed(),
            &progress,
            self.memcap,
            &extra,
        ));
    }
}
