//! `sniffer flows`.

use super::AppError;
use crate::config::FlowsConfig;

pub(super) fn run(_config: &FlowsConfig) -> Result<(), AppError> {
    Err(AppError::Io {
        what: "sniffer flows".into(),
        source: std::io::Error::other("not built yet"),
    })
}
