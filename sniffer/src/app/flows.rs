//! `sniffer flows`.

use std::io::{self, BufWriter};

use sniffer::{
    events::FlowEvents,
    listener::Tee,
    output::{flows::FlowsPrinter, stats::Extra},
    pipeline::{self, Extras, Progress},
};

use super::{AppError, config::FlowsConfig, events, health::Health, privilege, stop};

pub(super) fn run(config: &FlowsConfig) -> Result<(), AppError> {
    if let Some(dir) = &config.write_flows {
        // Created (and given to the user the program switches to) while it can.
        privilege::open_output_dir(dir, &config.run_as)?;
    }
    let mut source = stop::open(&config.source.input)?;
    privilege::drop_privileges(&config.run_as)?;
    if let Some(dir) = &config.write_flows {
        // Flow files are created by path, so the user needs the whole path.
        privilege::check_path(dir, &config.run_as)?;
    }
    // The event writers' threads start after the drop (it refuses to run beside threads).
    let events = events::start(&config.events)?;
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
    let mut health = Health::new(config.stats_interval, &events, config.flow.memcap);
    let every = health.every();
    let mut tick = |p: &Progress, _: &mut Tee<FlowsPrinter<_>, FlowEvents>| {
        health.tick(p, Extra::default());
    };
    let ran = pipeline::run_with(
        source.as_mut(),
        &config.flow,
        &mut tee,
        Extras {
            filter: config.source.filter.as_ref(),
            ticks: every.map(|e| (e, &mut tick as &mut dyn FnMut(&Progress, &mut _))),
            limit: config.source.count,
        },
    );
    let printer = tee.first;
    let (stats, failed) = match ran {
        Ok(stats) => (stats, None),
        Err(e) => (*e.stats, Some(e.source)),
    };
    let written = printer.finish();
    for line in sniffer::output::flows::closing_summary(&stats) {
        eprintln!("sniffer: {line}");
    }
    if stop::requested() {
        eprintln!("sniffer: interrupted: the sessions still open were ended and listed");
    }
    health.last(&stats, Extra::default());
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
