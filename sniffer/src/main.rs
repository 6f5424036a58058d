//! The `sniffer` command: parse, validate, run, exit. The program lives in [`app`]; the
//! library (`sniffer::…`) knows nothing of the command line.

mod app;

use app::{cli::Cli, config::Config, exit::ExitCode};
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logger(cli.verbose);
    let code = match Config::from_cli(cli)
        .map_err(app::AppError::from)
        .and_then(app::run)
    {
        Ok(()) => ExitCode::Success,
        Err(e) if e.is_broken_pipe() => ExitCode::Success,
        Err(e) => {
            eprintln!("sniffer: {e}");
            e.exit_code()
        }
    };
    code.into()
}

/// Warnings as one `sniffer: warning: …` line each; with `-v`, in full (time, source) and
/// with information, `-vv` also debugging. `RUST_LOG` still overrides the level.
fn logger(verbose: u8) {
    use std::io::Write as _;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if verbose == 0 {
        b.format(|f, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug | log::Level::Trace => "debug",
            };
            writeln!(f, "sniffer: {level}: {}", record.args())
        });
    }
    b.init();
}
