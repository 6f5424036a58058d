//! The Redis writer: batches of `XADD KEY MAXLEN ~ N * event JSON`, pipelined over one
//! connection on a current-thread tokio runtime of its own thread.
//!
//! Invariants:
//! - a batch taken from the queue is only let go once Redis has answered every XADD in it
//!   (each answer counts as sent or refused); on a connection failure the whole batch is
//!   sent again on the next connection, so records are delivered at least once (a batch
//!   cut off mid-way may be partly added twice);
//! - while there is no connection, nothing more is taken from the queue: it fills, and
//!   then [`super::Events::emit`] drops and counts;
//! - each outage is warned about once, and each kind of refusal (its error code) once;
//! - an error reply that means "not now" ([`TRANSIENT`]: loading, failing over, busy) is
//!   an outage, not a refusal: the batch is kept and sent again.

use std::{collections::HashSet, sync::mpsc as std_mpsc, time::Duration};

use redis::{AsyncConnectionConfig, Client, Value, aio::MultiplexedConnection};
use tokio::sync::mpsc;

use super::{Counters, Line, RedisStream, Shutdown, give_up, next};

/// How long one connection attempt may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis may take to answer a batch before the connection counts as lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Records per pipelined batch.
pub(super) const BATCH: usize = 512;
/// First wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Error replies that mean "not now" (loading its data, failing over, busy with a script):
/// the batch waits and is sent again, rather than being refused.
const TRANSIENT: [&str; 6] = [
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "READONLY",
    "CLUSTERDOWN",
];

fn is_transient(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(e) if TRANSIENT.contains(&e.code()))
}

pub(super) struct Writer {
    /// The destination as shown in messages.
    url: String,
    connect: String,
    key: String,
    maxlen: u64,
}

/// What the writer remembers between batches.
struct State {
    conn: Option<MultiplexedConnection>,
    /// Why Redis is away, once warned about; `None` while connected.
    away: Option<String>,
    /// Error codes already warned about.
    refusals: HashSet<String>,
    backoff: Duration,
}

impl Writer {
    pub(super) fn new(stream: &RedisStream, maxlen: u64) -> Self {
        Self {
            url: stream.shown.clone(),
            connect: stream.connect.clone(),
            key: stream.key.clone(),
            maxlen,
        }
    }

    /// Run until the queue is closed and drained (or the deadline passes); `ready` is told
    /// once the first connection attempt is over.
    pub(super) fn run(
        self,
        rx: mpsc::Receiver<Line>,
        counters: &Counters,
        shutdown: &Shutdown,
        ready: &std_mpsc::Sender<()>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                log::warn!(
                    "{}: cannot start its writer ({e}): events dropped",
                    self.url
                );
                let _ = ready.send(());
                let mut rx = rx;
                // Nothing will be sent: wait for the end, then count what was queued.
                while rx.blocking_recv().is_some() {
                    Counters::add(&counters.unsent, 1);
                }
                return;
            }
        };
        runtime.block_on(self.serve(rx, counters, shutdown, ready));
    }

    async fn serve(
        &self,
        mut rx: mpsc::Receiver<Line>,
        counters: &Counters,
        shutdown: &Shutdown,
        ready: &std_mpsc::Sender<()>,
    ) {
        let client = match Client::open(self.connect.as_str()) {
            Ok(c) => c,
            Err(e) => {
                // The URL was checked at start-up; this cannot happen, but is not hidden.
                log::warn!("{}: {e}: events dropped", self.url);
                let _ = ready.send(());
                while next(&mut rx, shutdown).await.is_some() {
                    Counters::add(&counters.refused, 1);
                }
                return;
            }
        };
        let mut state = State {
            conn: None,
            away: None,
            refusals: HashSet::new(),
            backoff: MIN_BACKOFF,
        };
        self.connect(&client, &mut state).await;
        let _ = ready.send(());
        let mut batch: Vec<Line> = Vec::with_capacity(BATCH);
        loop {
            if batch.is_empty() {
                let Some(line) = next(&mut rx, shutdown).await else {
                    return;
                };
                batch.push(line);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(line) => batch.push(line),
                        Err(_) => break,
                    }
                }
            }
            if state.conn.is_none() {
                if shutdown.expired() {
                    log::warn!(
                        "{}: still unreachable at exit; {} queued events not sent",
                        self.url,
                        batch.len() + rx.len()
                    );
                    give_up(&mut rx, batch.len(), counters);
                    return;
                }
                let wait = shutdown
                    .left()
                    .map_or(state.backoff, |left| left.min(state.backoff));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.notify.notified() => {}
                }
                state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
                self.connect(&client, &mut state).await;
                continue;
            }
            if self.send(&batch, &mut state, counters).await {
                batch.clear();
            }
        }
    }

    /// One connection attempt; warns when Redis is away (once per outage).
    async fn connect(&self, client: &Client, state: &mut State) {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => {
                if let Some(why) = state.away.take() {
                    log::warn!("{}: reachable again (it was away: {why})", self.url);
                }
                state.conn = Some(conn);
                state.backoff = MIN_BACKOFF;
            }
            Err(e) => self.went_away(state, &e),
        }
    }

    fn went_away(&self, state: &mut State, e: &redis::RedisError) {
        state.conn = None;
        if state.away.is_none() {
            log::warn!(
                "{}: unreachable ({e}); events wait in the queue and are dropped (counted) \
                 when it is full; retrying with backoff",
                self.url
            );
            state.away = Some(e.to_string());
        }
    }

    /// XADD the batch. `true` when Redis answered every command (each one sent or
    /// refused); `false` when the connection failed and the batch must be sent again.
    async fn send(&self, batch: &[Line], state: &mut State, counters: &Counters) -> bool {
        let Some(conn) = state.conn.as_mut() else {
            return false;
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for line in batch {
            let xadd = pipe.cmd("XADD").arg(&self.key);
            if self.maxlen > 0 {
                xadd.arg("MAXLEN").arg("~").arg(self.maxlen);
            }
            xadd.arg("*").arg("event").arg(line.as_bytes());
        }
        match pipe.query_async::<Vec<Value>>(conn).await {
            Ok(replies) if replies.iter().any(is_transient) => {
                // Redis is loading, failing over or busy: not a refusal. The whole batch
                // is sent again once it answers (what it took already may come twice).
                let why = replies
                    .iter()
                    .find_map(|r| match r {
                        Value::ServerError(e) if TRANSIENT.contains(&e.code()) => {
                            Some(format!("{} {}", e.code(), e.details().unwrap_or("")))
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                state.conn = None;
                if state.away.is_none() {
                    log::warn!(
                        "{}: not taking writes now ({why}); events wait in the queue, retrying \
                         with backoff",
                        self.url
                    );
                    state.away = Some(why);
                }
                false
            }
            Ok(replies) => {
                let mut sent = 0;
                let mut refused = 0;
                for reply in &replies {
                    if let Value::ServerError(e) = reply {
                        refused += 1;
                        if state.refusals.insert(e.code().to_owned()) {
                            log::warn!(
                                "{}: Redis refused XADD to {:?}: {} {}; such events are \
                                 dropped (counted)",
                                self.url,
                                self.key,
                                e.code(),
                                e.details().unwrap_or("")
                            );
                        }
                    } else {
                        sent += 1;
                    }
                }
                // Every command has one reply; a short answer is not trusted as sent.
                refused += batch.len().saturating_sub(replies.len());
                Counters::add(&counters.sent, sent);
                Counters::add(&counters.refused, refused);
                true
            }
            Err(e) => {
                self.went_away(state, &e);
                false
            }
        }
    }
}
