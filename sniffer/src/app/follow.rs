//! `sniffer follow`.

use std::io::{self, BufWriter};

use sniffer::{
    capture,
    output::follow::{FlowSelector, FollowFormat, Follower},
    pipeline,
};

use super::{AppError, config::FollowConfig};

pub(super) fn run(config: &FollowConfig) -> Result<(), AppError> {
    let mut source = capture::open(&config.source.input)?;
    let out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let mut follower = Follower::new(out, config.select.clone(), config.format, config.dir);
    let (stats, failed) = match pipeline::run_filtered(
        source.as_mut(),
        config.source.filter.as_ref(),
        &config.flow,
        &mut follower,
    ) {
        Ok(stats) => (stats, None),
        Err(e) => (*e.stats, Some(e.source)),
    };
    let (_, session, gaps) = follower.finish().map_err(|source| AppError::Io {
        what: "writing the stream".into(),
        source,
    })?;
    let Some(session) = session else {
        eprintln!(
            "sniffer: {}",
            sniffer::output::flows::closing_summary(&stats)
        );
        if let Some(e) = failed {
            return Err(e.into());
        }
        let what = match &config.select {
            FlowSelector::Stream(n) => format!("stream {n}"),
            FlowSelector::Endpoints(a, b) => format!("a session between {a} and {b}"),
        };
        return Err(AppError::NotFound(format!(
            "no {what} in the input ({} TCP sessions, numbered from 0)",
            stats.flow.sessions
        )));
    };
    let missing: u64 = gaps.iter().map(|g| g.2).sum();
    eprintln!(
        "sniffer: stream {} ({} > {}): {} gaps, {missing} bytes missing{}",
        session.stream,
        session.client,
        session.server,
        gaps.len(),
        if config.format == FollowFormat::Raw && missing > 0 {
            " (raw output skips them; offsets below)"
        } else {
            ""
        }
    );
    if config.format == FollowFormat::Raw {
        for (dir, offset, len) in &gaps {
            eprintln!("sniffer:   {dir} [{len} bytes missing] at offset {offset}");
        }
    }
    if stats.stopped_early {
        eprintln!("sniffer: stopped reading once the stream ended");
    } else {
        eprintln!(
            "sniffer: {}",
            sniffer::output::flows::closing_summary(&stats)
        );
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
