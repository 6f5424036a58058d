//! Live capture: the eBPF socket filter selects packets in the kernel and hands them to
//! userspace through a BPF ring buffer.

/// Live capture could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The device does not exist.
    #[error("no such device: {iface} (list devices with `ip link`)")]
    NoSuchDevice {
        /// The name given.
        iface: String,
    },
}
