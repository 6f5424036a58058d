//! `sniffer flows`.

use std::io::{self, BufWriter};

use sniffer::{output::flows::FlowsPrinter, pipeline};

use super::{AppError, config::FlowsConfig, stop};

pub(super) fn run(config: &FlowsConfig) -> Result<(), AppError> {
    let mut source = stop::open(&config.input, config.count)?;
    let out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let mut printer = FlowsPrinter::new(out, config.format, config.write_flows.as_deref())
        .map_err(|source| AppError::Io {
            what: format!(
                "--write-flows {}",
                config
                    .write_flows
                    .as_deref()
                    .unwrap_or_else(|| ".".as_ref())
                    .display()
            ),
            source,
        })?;
    let (stats, failed) = match pipeline::run(source.as_mut(), &config.flow, &mut printer) {
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
