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
mod health;
mod http;
mod interfaces;
pub mod privilege;
mod stop;

use sniffer::{
    Timestamp,
    capture::{CaptureError, live::LiveError},
};

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
    /// Files could not be written whole (each has an index line saying why).
    #[error("{}", not_saved(*failed, *index_errors, dir))]
    NotSaved {
        /// Files that failed.
        failed: u64,
        /// Index lines that could not be written.
        index_errors: u64,
        /// The output directory.
        dir: std::path::PathBuf,
    },
    /// The privileges could not be dropped.
    #[error(transparent)]
    Privilege(#[from] privilege::PrivilegeError),
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

fn not_saved(failed: u64, index_errors: u64, dir: &std::path::Path) -> String {
    let mut s = String::new();
    if failed > 0 {
        s += &format!(
            "{} could not be written whole in {}",
            sniffer::output::count(failed, "file", "files"),
            dir.display()
        );
        s += if index_errors == 0 && dir.join("index.jsonl").exists() {
            " (index.jsonl says why)"
        } else {
            " (the warnings above say why)"
        };
    }
    if index_errors > 0 {
        if !s.is_empty() {
            s += "; ";
        }
        s += &format!(
            "{} could not be written to {}",
            sniffer::output::count(index_errors, "line", "lines"),
            dir.join("index.jsonl").display()
        );
    }
    s
}

impl AppError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_)
            | Self::NotFound(_)
            | Self::Capture(CaptureError::Live(LiveError::NoSuchDevice { .. }))
            | Self::Extract(sniffer::extract::ExtractError::NotADirectory { .. }) => {
                ExitCode::Usage
            }
            Self::Capture(CaptureError::File(e)) if e.is_damage() => ExitCode::DamagedInput,
            Self::Capture(CaptureError::File(e)) if e.is_not_a_capture() => ExitCode::Usage,
            Self::Capture(_)
            | Self::Extract(_)
            | Self::Privilege(_)
            | Self::Events(_)
            | Self::Io { .. }
            | Self::NotSaved { .. } => ExitCode::Failure,
        }
    }

    /// Output went to a reader that went away (`sniffer ... | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The wall-clock time now.
fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_parts(d.as_secs(), d.subsec_nanos())
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
        Config::ListInterfaces => interfaces::run(),
    }
}
