//! The event layer as the commands use it: started from the config, finished with a
//! summary line per destination.

use sniffer::events::{Events, EventsConfig};

use super::AppError;

/// Start the destinations (none: a disabled handle).
///
/// # Errors
/// A file destination that cannot be opened, a writer that cannot start.
pub(super) fn start(config: &EventsConfig) -> Result<Events, AppError> {
    if config.destinations.is_empty() {
        return Ok(Events::disabled());
    }
    Ok(Events::start(config)?)
}

/// Deliver what is queued (within the flush timeout) and say, per destination, what was
/// sent and what was dropped.
pub(super) fn finish(events: &Events) {
    for s in events.finish() {
        eprintln!(
            "sniffer: events to {}: {} sent, {} dropped ({} queue full, {} refused, {} unsent at exit)",
            s.url,
            s.sent,
            s.dropped(),
            s.queue_full,
            s.refused,
            s.unsent,
        );
    }
}
