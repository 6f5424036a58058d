//! `sniffer http`.

use super::AppError;
use crate::config::HttpConfig;

pub(super) fn run(_config: &HttpConfig) -> Result<(), AppError> {
    Err(AppError::Io {
        what: "sniffer http".into(),
        source: std::io::Error::other("not built yet"),
    })
}
