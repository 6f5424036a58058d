//! Every record, also to where a fleet's events meet: Redis Streams and JSON-lines files
//! (`--events URL`), through bounded queues that never hold up the packet path.
//!
//! [`Events::start`] starts one writer thread per [`Destination`], each fed by its own
//! bounded queue of serialized records. [`Events::emit`] writes a record as JSON once
//! (with the sensor's name) and offers it to every queue without waiting: when a queue is
//! full, the record is dropped for that destination and counted. The writers:
//!
//! - Redis (`redis://HOST:PORT/KEY`, `rediss://` over TLS): `XADD KEY MAXLEN ~ N * event
//!   JSON`, pipelined in batches. When Redis is away it warns once, reconnects with backoff
//!   (100 ms doubling to 5 s) and resends the batch it held, so a record that made it into
//!   the queue is delivered at least once; meanwhile the queue fills and then drops. What
//!   Redis refuses (wrong type at KEY, out of memory, authentication required) is dropped
//!   and counted, with one warning per kind of refusal.
//! - file (`file://PATH?rotate=100MB&keep=10`): JSON lines appended to PATH, rotated to
//!   `PATH.1` … `PATH.N` before it would grow past the size.
//!
//! [`Events::finish`] closes the queues and waits for the writers to deliver what is
//! queued, for at most [`EventsConfig::flush_timeout`]; what is left is counted as unsent.
//! Nothing is dropped silently: [`SinkStats`] has every count.

mod destination;
mod file;
mod redis_stream;

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub use destination::{BadUrl, Destination, EventFile, RedisStream};
use tokio::sync::{Notify, mpsc};

use crate::{
    listener::{Listener, SessionInfo, SessionStats},
    output::flows::flow_record,
    records::Record,
};

/// The event layer's settings.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// Where records go; none turns the layer off.
    pub destinations: Vec<Destination>,
    /// Put on every record as `sensor` (the host name, unless told otherwise).
    pub sensor: Option<String>,
    /// Redis: `MAXLEN ~ N` on every XADD, so the stream stays near N entries; 0 for no
    /// bound.
    pub maxlen: u64,
    /// Records each destination's queue holds while its writer is behind or away.
    pub queue: usize,
    /// How long [`Events::finish`] waits for the queues to drain.
    pub flush_timeout: Duration,
    /// Send a `stats` record this often; never when `None`.
    pub stats_interval: Option<Duration>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            destinations: Vec::new(),
            sensor: None,
            maxlen: 1_000_000,
            queue: 16_384,
            flush_timeout: Duration::from_secs(5),
            stats_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// Why the event layer could not start.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// A file destination could not be opened.
    #[error("--events {url}: {source}")]
    Open {
        /// The destination.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A writer thread could not be started.
    #[error("starting the writer for --events {url}: {source}")]
    Thread {
        /// The destination.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What one destination counted. Every record offered to it is, in the end, exactly one
/// of sent, dropped for a full queue, refused, or unsent.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkStats {
    /// The destination, as given (password hidden).
    pub url: String,
    /// Records delivered (Redis acknowledged the XADD; the line was written).
    pub sent: u64,
    /// Records dropped because the queue was full (the writer behind, or Redis away).
    pub queue_full: u64,
    /// Records the destination refused (a Redis error reply; a failed write).
    pub refused: u64,
    /// Records still queued when the run ended and the flush timeout ran out.
    pub unsent: u64,
    /// Records in the queue now.
    pub queued: u64,
}

impl SinkStats {
    /// Records that did not arrive, for whatever reason.
    pub const fn dropped(&self) -> u64 {
        self.queue_full + self.refused + self.unsent
    }
}

/// A destination's counters, shared by the emitting side and its writer.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    queue_full: AtomicU64,
    refused: AtomicU64,
    unsent: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Tells a writer that the run is over: deliver what is queued, until the deadline.
#[derive(Debug, Default)]
struct Shutdown {
    deadline: OnceLock<Instant>,
    notify: Notify,
}

impl Shutdown {
    fn begin(&self, deadline: Instant) {
        let _ = self.deadline.set(deadline);
        self.notify.notify_one();
    }

    /// The run is over and the deadline has passed.
    fn expired(&self) -> bool {
        self.deadline.get().is_some_and(|d| Instant::now() >= *d)
    }

    /// Time left before the deadline, if the run is over.
    fn left(&self) -> Option<Duration> {
        self.deadline
            .get()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// A serialized record, shared by every destination's queue.
type Line = Arc<str>;

/// The next record of the queue; after shutdown the queue is closed and drained, then
/// `None`.
async fn next(rx: &mut mpsc::Receiver<Line>, shutdown: &Shutdown) -> Option<Line> {
    loop {
        if shutdown.deadline.get().is_some() {
            rx.close();
            return rx.recv().await;
        }
        tokio::select! {
            line = rx.recv() => return line,
            () = shutdown.notify.notified() => {}
        }
    }
}

/// Count what is left in a closed queue as unsent.
fn give_up(rx: &mut mpsc::Receiver<Line>, held: usize, counters: &Counters) {
    rx.close();
    let mut n = held;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    Counters::add(&counters.unsent, n);
}

/// One destination as the emitting side sees it.
#[derive(Debug)]
struct Sink {
    url: String,
    tx: mpsc::Sender<Line>,
    counters: Arc<Counters>,
    shutdown: Arc<Shutdown>,
}

#[derive(Debug)]
struct Shared {
    sensor: Option<String>,
    sinks: Vec<Sink>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    flush_timeout: Duration,
    stats_interval: Option<Duration>,
}

/// The event layer: a cheap handle (clones share the queues) that emits records to every
/// destination without blocking.
#[derive(Clone, Debug)]
pub struct Events {
    shared: Arc<Shared>,
}

impl Events {
    /// No destinations: [`Self::emit`] does nothing.
    pub fn disabled() -> Self {
        Self::with_sinks(&EventsConfig::default(), Vec::new(), Vec::new())
    }

    fn with_sinks(config: &EventsConfig, sinks: Vec<Sink>, threads: Vec<JoinHandle<()>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                sensor: config.sensor.clone(),
                sinks,
                threads: Mutex::new(threads),
                flush_timeout: config.flush_timeout,
                stats_interval: config.stats_interval,
            }),
        }
    }

    /// Open every destination and start its writer. A Redis server that cannot be
    /// reached now is a warning, not an error: its writer keeps trying.
    ///
    /// # Errors
    /// A file that cannot be opened, a thread that cannot be started.
    pub fn start(config: &EventsConfig) -> Result<Self, EventsError> {
        let mut sinks = Vec::new();
        let mut threads = Vec::new();
        let mut ready = Vec::new();
        for (i, dest) in config.destinations.iter().enumerate() {
            let url = dest.to_string();
            let (tx, rx) = mpsc::channel(config.queue.max(1));
            let counters = Arc::new(Counters::default());
            let shutdown = Arc::new(Shutdown::default());
            let job: Box<dyn FnOnce() + Send> = match dest {
                Destination::Redis(stream) => {
                    let (said, heard) = std::sync::mpsc::channel();
                    ready.push(heard);
                    let writer = redis_stream::Writer::new(stream, config.maxlen);
                    let (c, s) = (Arc::clone(&counters), Arc::clone(&shutdown));
                    Box::new(move || writer.run(rx, &c, &s, &said))
                }
                Destination::File(f) => {
                    let writer = file::Writer::open(f).map_err(|source| EventsError::Open {
                        url: url.clone(),
                        source,
                    })?;
                    let (c, s) = (Arc::clone(&counters), Arc::clone(&shutdown));
                    Box::new(move || writer.run(rx, &c, &s))
                }
            };
            let handle = std::thread::Builder::new()
                .name(format!("sniffer-events-{i}"))
                .spawn(job)
                .map_err(|source| EventsError::Thread {
                    url: url.clone(),
                    source,
                })?;
            threads.push(handle);
            sinks.push(Sink {
                url,
                tx,
                counters,
                shutdown,
            });
        }
        // Each Redis writer tries to connect at once: its warning, if any, comes before
        // capture starts.
        for heard in ready {
            let _ = heard.recv_timeout(redis_stream::CONNECT_TIMEOUT + Duration::from_secs(1));
        }
        Ok(Self::with_sinks(config, sinks, threads))
    }

    /// Whether any destination is configured.
    pub fn is_enabled(&self) -> bool {
        !self.shared.sinks.is_empty()
    }

    /// How often a `stats` record is due.
    pub fn stats_interval(&self) -> Option<Duration> {
        self.shared.stats_interval.filter(|_| self.is_enabled())
    }

    /// Offer `record` to every destination; never waits. A full queue drops it (counted).
    pub fn emit<R: Record + ?Sized>(&self, record: &R) {
        if self.shared.sinks.is_empty() {
            return;
        }
        let line: Line = record.to_json_from(self.shared.sensor.as_deref()).into();
        for sink in &self.shared.sinks {
            match sink.tx.try_send(Arc::clone(&line)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    Counters::add(&sink.counters.queue_full, 1);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Counters::add(&sink.counters.unsent, 1);
                }
            }
        }
    }

    /// Every destination's counters now.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.shared
            .sinks
            .iter()
            .map(|s| {
                let c = &s.counters;
                SinkStats {
                    url: s.url.clone(),
                    sent: c.sent.load(Ordering::Relaxed),
                    queue_full: c.queue_full.load(Ordering::Relaxed),
                    refused: c.refused.load(Ordering::Relaxed),
                    unsent: c.unsent.load(Ordering::Relaxed),
                    queued: (s.tx.max_capacity() - s.tx.capacity()) as u64,
                }
            })
            .collect()
    }

    /// Close the queues, wait (at most the flush timeout, plus a moment for a reply in
    /// flight) for the writers to deliver what is queued, and return the final counts.
    /// Records emitted afterwards are counted as unsent. Idempotent.
    pub fn finish(&self) -> Vec<SinkStats> {
        let deadline = Instant::now() + self.shared.flush_timeout;
        for sink in &self.shared.sinks {
            sink.shutdown.begin(deadline);
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in threads {
            if t.join().is_err() {
                log::error!("an event writer panicked; its counts may be short");
            }
        }
        self.stats()
    }

    /// Events sent and dropped so far, over every destination.
    pub fn counts(&self) -> (u64, u64) {
        let sinks = self.stats();
        (
            sinks.iter().map(|s| s.sent).sum(),
            sinks.iter().map(SinkStats::dropped).sum(),
        )
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Never finished: let the writers drain and stop on their own, within the timeout.
        let deadline = Instant::now() + self.flush_timeout;
        for sink in &self.sinks {
            sink.shutdown.begin(deadline);
        }
    }
}

/// A listener that sends a `flow` record for every session as it leaves the table. Put
/// it beside the HTTP analyzer with [`crate::listener::Tee`].
#[derive(Debug)]
pub struct FlowEvents {
    events: Events,
    seed: u16,
}

impl FlowEvents {
    /// Flow records to `events`, with Community IDs from `seed`.
    pub const fn new(events: Events, seed: u16) -> Self {
        Self { events, seed }
    }
}

impl Listener for FlowEvents {
    fn session_stats(&mut self, session: &SessionInfo, stats: &SessionStats) {
        if self.events.is_enabled() {
            self.events.emit(&flow_record(session, stats, self.seed));
        }
    }
}

#[cfg(test)]
mod tests;
