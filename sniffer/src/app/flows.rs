//! `sniffer flows`.

use std::io::{self, BufWriter};

use sniffer::{capture, output::flows::FlowsPrinter, pipeline};

use super::{AppError, config::FlowsConfig};

pub(super) fn run(config: &FlowsConfig) -> Result<(), AppError> {
    let mut source = capture::open(&config.source.input)?;
    let out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let mut printer =
        FlowsPrinter::new(out, config.json, config.write_flows.as_deref()).map_err(|source| {
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
    let (stats, failed) = match pipeline::run_filtered(
        source.as_mut(),
        config.source.filter.as_ref(),
        &config.flow,
        &mut printer,
    ) {
        Ok(stats) => (stats, None),
        Err(e) => (*e.stats, Some(e.source)),
    };
    let written = printer.finish();
    eprintln!(
        "sniffer: {}",
        sniffer::output::flows::closing_summary(&stats)
    );
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
