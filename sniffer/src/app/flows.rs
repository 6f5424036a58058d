//! `sniffer flows`.

use std::io::{self, BufWriter};

use sniffer::{
    capture,
    events::FlowEvents,
    listener::Tee,
    output::flows::FlowsPrinter,
    pipeline::{self, Progress},
};

use super::{AppError, config::FlowsConfig, events};

pub(super) fn run(config: &FlowsConfig) -> Result<(), AppError> {
    let events = events::start(&config.events)?;
    let mut source = capture::open(&config.input)?;
    let out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let printer =
        FlowsPrinter::new(out, config.format, config.write_flows.as_deref()).map_err(|source| {
            AppError::Io {
                what: format!(
                    "--write-flows {}",
                    config
                        .write_flows
                        .as_deref()
                        .unwrap_or_else(|| ".".as_ref())
                        .display()
                ),
                source,
            }
        })?;
    let seed = config.format.community_id_seed;
    let mut tee = Tee::new(printer, FlowEvents::new(events.clone(), seed));
    let memcap = config.flow.memcap;
    let outcome = match events.stats_interval() {
        Some(every) => pipeline::run_observed(
            source.as_mut(),
            &config.flow,
            &mut tee,
            every,
            &mut |_, progress| events.emit(&events.stats_record(progress, memcap, None, None)),
        ),
        None => pipeline::run(source.as_mut(), &config.flow, &mut tee),
    };
    let printer = tee.first;
    let (stats, failed) = match outcome {
        Ok(stats) => (stats, None),
        Err(e) => (*e.stats, Some(e.source)),
    };
    let written = printer.finish();
    eprintln!(
        "sniffer: {}",
        sniffer::output::flows::closing_summary(&stats)
    );
    if events.is_enabled() {
        let last = Progress {
            stats,
            ..Progress::default()
        };
        events.emit(&events.stats_record(&last, memcap, None, None));
    }
    events::finish(&events);
    written.map_err(|source| AppError::Io {
        what: if config.write_flows.is_some() {
            "writing flows".into()
        } else {
            "writing the flow table".into()
        },
        source,
    })?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
