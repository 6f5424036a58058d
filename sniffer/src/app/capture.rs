//! `sniffer capture`.

use super::AppError;
use crate::config::CaptureConfig;

pub(super) fn run(_config: &CaptureConfig) -> Result<(), AppError> {
    Err(AppError::Io {
        what: "sniffer capture".into(),
        source: std::io::Error::other("not built yet"),
    })
}
