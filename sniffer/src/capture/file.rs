//! Capture files: pcap and pcapng (detected by magic), gzip-compressed, standard input,
//! several files merged in timestamp order.

/// A capture file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl FileError {
    /// The file itself is damaged (as opposed to unreadable): a distinct exit code.
    pub fn is_damage(&self) -> bool {
        false
    }
}
