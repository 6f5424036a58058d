//! `sniffer follow`.

use super::AppError;
use crate::config::FollowConfig;

pub(super) fn run(_config: &FollowConfig) -> Result<(), AppError> {
    Err(AppError::Io {
        what: "sniffer follow".into(),
        source: std::io::Error::other("not built yet"),
    })
}
