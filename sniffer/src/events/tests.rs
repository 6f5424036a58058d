use std::net::TcpListener;

use super::*;

/// A record made for the tests: `{"v":1,"type":"test","n":N,"pad":"…"}`.
#[derive(serde::Serialize)]
struct Numbered {
    n: usize,
    pad: String,
}

impl Record for Numbered {
    const KIND: &'static str = "test";
}

fn numbered(n: usize) -> Numbered {
    Numbered {
        n,
        pad: "x".repeat(n % 50),
    }
}

fn config(url: &str) -> EventsConfig {
    EventsConfig {
        destinations: vec![Destination::parse(url).unwrap()],
        sensor: Some("unit".into()),
        ..EventsConfig::default()
    }
}

#[test]
fn issue15_a_file_destination_gets_every_line_and_rotates_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    let limit = 4000;
    let events = Events::start(&config(&format!(
        "file://{}?rotate={limit}&keep=2",
        path.display()
    )))
    .unwrap();
    let lines: Vec<String> = (0..300)
        .map(|n| numbered(n).to_json_from(Some("unit")))
        .collect();
    for n in 0..300 {
        events.emit(&numbered(n));
    }
    let stats = events.finish();
    assert_eq!(
        stats,
        [SinkStats {
            url: format!("file://{}", path.display()),
            sent: 300,
            ..SinkStats::default()
        }]
    );
    // The newest lines are in e.jsonl, the older ones in e.jsonl.1 and .2; older ones
    // than that were rotated away. No file goes past the limit, no line is split.
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let kept: Vec<String> = ["e.jsonl.2", "e.jsonl.1", "e.jsonl"]
        .iter()
        .flat_map(|name| {
            let text = read(name);
            assert!(text.len() <= limit, "{name}: {} bytes", text.len());
            assert!(text.ends_with('\n'));
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    assert!(!dir.path().join("e.jsonl.3").exists(), "keep=2 keeps two");
    assert!(kept.len() > 40, "{} lines kept", kept.len());
    assert_eq!(kept, lines[lines.len() - kept.len()..]);
}

#[test]
fn issue15_a_file_is_appended_to_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    std::fs::write(&path, "earlier\n").unwrap();
    let events = Events::start(&config(&format!("file://{}", path.display()))).unwrap();
    events.emit(&numbered(1));
    assert_eq!(events.finish()[0].sent, 1);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!("earlier\n{}\n", numbered(1).to_json_from(Some("unit")))
    );
}

#[test]
fn issue15_a_file_that_cannot_be_opened_is_an_error() {
    let e = Events::start(&config("file:///nonexistent-dir/e.jsonl")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--events file:///nonexistent-dir/e.jsonl: "),
        "{e}"
    );
}

/// A loopback port where nothing listens.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn issue15_an_unreachable_redis_never_blocks_and_every_record_is_counted() {
    let port = closed_port();
    let queue = 100;
    let mut cfg = config(&format!("redis://127.0.0.1:{port}/k"));
    cfg.queue = queue;
    cfg.flush_timeout = Duration::from_millis(300);
    // Unreachable at start-up: a warning, not an error.
    let events = Events::start(&cfg).unwrap();
    let emitted = 5000;
    // Nothing waits for Redis: what does not fit the queue is dropped at once, counted.
    for n in 0..emitted {
        events.emit(&numbered(n));
    }
    let during = &events.stats()[0];
    assert_eq!(during.sent, 0);
    assert!(
        during.queue_full >= (emitted - queue - redis_stream::BATCH) as u64,
        "{during:?}"
    );
    let s = &events.finish()[0];
    assert_eq!(s.sent, 0, "{s:?}");
    assert_eq!(s.refused, 0, "{s:?}");
    assert_eq!(s.queue_full + s.unsent, emitted as u64, "{s:?}");
    assert_eq!(s.dropped(), emitted as u64);
    assert_eq!(s.queued, 0, "{s:?}");
    // After the end, a record is counted too.
    events.emit(&numbered(0));
    assert_eq!(events.stats()[0].unsent, s.unsent + 1);
}

#[test]
fn issue15_no_destination_costs_nothing_and_counts_nothing() {
    let events = Events::disabled();
    assert!(!events.is_enabled());
    assert_eq!(events.stats_interval(), None);
    events.emit(&numbered(1));
    assert!(events.finish().is_empty());
}
