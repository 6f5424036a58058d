//! `sniffer follow`.

use std::io::{self, BufWriter};

use sniffer::{
    output::follow::{FlowSelector, FollowFormat, Follower},
    pipeline::{self, Extras},
};

use super::{AppError, config::FollowConfig, privilege, stop};

pub(super) fn run(config: &FollowConfig) -> Result<(), AppError> {
    let mut source = stop::open(&config.source.input)?;
    privilege::drop_privileges(&config.run_as)?;
    let out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let mut follower = Follower::new(out, config.select.clone(), config.format, config.dir);
    let (stats, failed) = match pipeline::run_with(
        source.as_mut(),
        &config.flow,
        &mut follower,
        Extras {
            filter: config.source.filter.as_ref(),
            limit: config.source.count,
            ..Extras::default()
        },
    ) {
        Ok(stats) => (stats, None),
        Err(e) => (*e.stats, Some(e.source)),
    };
    let (_, session, gaps) = follower.finish().map_err(|source| AppError::Io {
        what: "writing the stream".into(),
        source,
    })?;
    let Some(session) = session else {
        for line in sniffer::output::flows::closing_summary(&stats) {
            eprintln!("sniffer: {line}");
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        let what = match &config.select {
            FlowSelector::Stream(n) => format!("stream {n}"),
            FlowSelector::Endpoints(a, b) => format!("a session between {a} and {b}"),
        };
        if stop::requested() {
            eprintln!("sniffer: interrupted before {what} was seen");
            return Ok(());
        }
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
    if stop::requested() {
        eprintln!("sniffer: interrupted: printed what was seen of the stream");
    } else if stats.stopped_early {
        eprintln!("sniffer: stopped reading once the stream ended");
    } else {
        for line in sniffer::output::flows::closing_summary(&stats) {
            eprintln!("sniffer: {line}");
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
