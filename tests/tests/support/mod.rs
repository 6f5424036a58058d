//! What the live HTTP tests share: a sniffer saving bodies in the background, as the
//! program runs it (live source → pipeline → HTTP analyzer → extractor), curl, and the
//! index it writes.

#![allow(
    dead_code,
    reason = "a module of each test binary that includes it; not every one reads every field"
)]

use std::{
    path::Path,
    thread::{self, JoinHandle},
    time::Duration,
};

use sniffer::{
    capture::live::{LiveOptions, LiveSource, StopHandle},
    extract::{ExtractConfig, ExtractStats, Extractor},
    flow::FlowConfig,
    http::{HttpAnalyzer, HttpStats, Limits},
    pipeline::{self, PipelineStats},
};
use tests::Netns;

/// What a [`Sniffer`] counted.
pub struct Counted {
    pub pipeline: PipelineStats,
    pub http: HttpStats,
    pub saved: ExtractStats,
}

/// A live capture saving HTTP bodies on a thread of its own.
pub struct Sniffer {
    stop: StopHandle,
    thread: JoinHandle<Counted>,
}

impl Sniffer {
    /// Opens `options`' device inside `ns` and saves what `extract` selects.
    pub fn start(ns: &Netns, options: &LiveOptions, extract: ExtractConfig) -> Self {
        let mut source = ns.enter(|| LiveSource::open(options)).unwrap().unwrap();
        let stop = source.stop_handle();
        let thread = thread::spawn(move || {
            let ex = Extractor::new(extract).unwrap();
            let mut analyzer = HttpAnalyzer::new(ex, Limits::default());
            let pipeline =
                pipeline::run(&mut source, &FlowConfig::default(), &mut analyzer).unwrap();
            analyzer.finish();
            let http = analyzer.stats().clone();
            let mut ex = analyzer.into_listener();
            ex.finish();
            Counted {
                pipeline,
                http,
                saved: ex.stats(),
            }
        });
        Self { stop, thread }
    }

    /// Stops once the last ACKs and FINs have had a moment to reach the ring buffer.
    pub fn stop(self) -> Counted {
        thread::sleep(Duration::from_millis(500));
        self.stop.stop();
        self.thread.join().unwrap()
    }
}

/// `curl -sS --http1.1 --max-time 30 -o /dev/null ARGS…` in `ns`, which must succeed.
pub fn curl(ns: &Netns, args: &[&str]) {
    let mut all = vec![
        "curl",
        "-sS",
        "--http1.1",
        "--max-time",
        "30",
        "-o",
        "/dev/null",
    ];
    all.extend(args);
    let done = ns.run(&all);
    assert!(done.is_ok(), "curl {args:?}: {done:?}");
}

/// The records of `dir/index.jsonl`.
pub fn index(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("index.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
