//! The `sniffer` command: parse, validate, run, exit. The program lives in [`app`]; the
//! library (`sniffer::…`) knows nothing of the command line.

mod app;

use app::{cli::Cli, config::Config, exit::ExitCode};
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
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
