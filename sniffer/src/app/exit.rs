//! Process exit codes: one enum, documented in the README's table.

/// Process exit codes. Documented in the README; scripts rely on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything went as asked (also: the reader closed our pipe, as in `| head`).
    Success = 0,
    /// A runtime failure: I/O, permissions, the kernel refused the program.
    Failure = 1,
    /// A usage error: bad arguments, or a device that does not exist.
    Usage = 2,
    /// A capture file is damaged: everything before the damage was processed and kept.
    DamagedInput = 3,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        Self::from(code as u8)
    }
}
