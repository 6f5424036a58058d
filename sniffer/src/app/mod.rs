//! The program: the command line ([`cli`]), checked once into a [`config::Config`], and
//! one file per command that wires that config to the library and prints. Only the binary
//! compiles this; the library knows nothing of it.

mod capture;
pub mod cli;
pub mod config;
mod events;
pub mod exit;
mod flows;
mod follow;
mod http;

use sniffer::capture::{CaptureError, live::LiveError};

use config::{Config, ConfigError};
use exit::ExitCode;

/// Why a command failed. Each variant knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The command line made no sense.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Reading packets failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// What the command was asked to find is not in the input (e.g. `follow 99`).
    #[error("{0}")]
    NotFound(String),
    /// The output directory or a saved file could not be created.
    #[error(transparent)]
    Extract(#[from] sniffer::extract::ExtractError),
    /// An event destination could not be opened.
    #[error(transparent)]
    Events(#[from] sniffer::events::EventsError),
    /// Writing output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_) | Self::Capture(CaptureError::Live(LiveError::NoSuchDevice { .. })) => {
                ExitCode::Usage
            }
            Self::Capture(CaptureError::File(e)) if e.is_damage() => ExitCode::DamagedInput,
            Self::Capture(_)
            | Self::Extract(_)
            | Self::Events(_)
            | Self::Io { .. }
            | Self::NotFound(_) => ExitCode::Failure,
        }
    }

    /// Output went to a reader that went away (`sniffer ... | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Run one command to completion.
///
/// # Errors
/// See [`AppError`]; output produced before an error is kept.
pub fn run(config: Config) -> Result<(), AppError> {
    match config {
        Config::Http(c) => http::run(&c),
        Config::Capture(c) => capture::run(&c),
        Config::Flows(c) => flows::run(&c),
        Config::Follow(c) => follow::run(&c),
    }
}
