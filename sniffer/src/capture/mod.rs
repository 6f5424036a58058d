//! Where frames come from: the live eBPF ring buffer ([`live`]) or capture files ([`file`]).
//!
//! Both yield the same [`Frame`], so everything downstream is one code path.

pub mod file;
pub mod kernel_filter;
pub mod live;
mod mapped;
pub mod nflog;
mod wake;
pub mod writer;

use std::{path::PathBuf, sync::atomic::AtomicBool};

pub use crate::wire::Timestamp;
pub use kernel_filter::KernelFilter;
pub use live::LiveOptions;

/// The link layer of a frame, named after its pcap LINKTYPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): BSD loopback, a 4-byte host-order address family.
    Null,
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101): the frame starts with an IPv4 or IPv6 header.
    Raw,
    /// LINKTYPE_LOOP (108): like NULL with the family in network order.
    Loop,
    /// LINKTYPE_IEEE802_11_RADIOTAP (127).
    Ieee80211Radiotap,
    /// LINKTYPE_IEEE802_11 (105): 802.11 without radiotap.
    Ieee80211,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_NFLOG (239): Linux netfilter log messages (`tcpdump -i nflog:N`).
    Nflog,
    /// Anything else, by number.
    Other(u32),
}

impl LinkType {
    /// From a pcap/pcapng LINKTYPE number (DLT_RAW's platform values 12 and 14 included).
    pub const fn from_linktype(n: u32) -> Self {
        match n {
            0 => Self::Null,
            1 => Self::Ethernet,
            12 | 14 | 101 => Self::Raw,
            105 => Self::Ieee80211,
            108 => Self::Loop,
            113 => Self::LinuxSll,
            127 => Self::Ieee80211Radiotap,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            239 => Self::Nflog,
            276 => Self::LinuxSll2,
            n => Self::Other(n),
        }
    }
    /// The LINKTYPE number written into pcap/pcapng files.
    pub const fn linktype(self) -> u32 {
        match self {
            Self::Null => 0,
            Self::Ethernet => 1,
            Self::Raw => 101,
            Self::Ieee80211 => 105,
            Self::Loop => 108,
            Self::LinuxSll => 113,
            Self::Ieee80211Radiotap => 127,
            Self::Ipv4 => 228,
            Self::Ipv6 => 229,
            Self::Nflog => 239,
            Self::LinuxSll2 => 276,
            Self::Other(n) => n,
        }
    }
}

/// One captured frame, borrowed from its source until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// When it was captured.
    pub ts: Timestamp,
    /// How to read `data`.
    pub link_type: LinkType,
    /// The captured bytes (may be shorter than `orig_len`: snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
}

impl Frame<'_> {
    /// The capture holds less than the wire carried.
    pub const fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < self.orig_len as u64
    }
}

/// A stop request for capture files: set it (from a signal handler too: the store is
/// async-signal-safe) and file sources end at their next frame, cleanly, as if the input
/// ended there; a read that a signal interrupts returns what it has instead of waiting
/// on. Live sources catch SIGINT and SIGTERM themselves.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Where packets come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Capture files, merged in timestamp order (`-` is standard input).
    Files(Vec<PathBuf>),
    /// A live device.
    Live(LiveOptions),
}

/// Open an input as a packet source.
///
/// # Errors
/// A capture file that cannot be opened or whose header is damaged, or a live device that
/// cannot be opened.
pub fn open(input: &Input) -> Result<Box<dyn PacketSource>, CaptureError> {
    match input {
        Input::Files(paths) => Ok(Box::new(file::FileSource::open(paths)?)),
        Input::Live(live) => Ok(Box::new(live::LiveSource::open(live)?)),
    }
}

/// A source of frames: a live device or capture files.
pub trait PacketSource {
    /// The next frame, or `None` at the end (end of file, or Ctrl-C on a live device).
    ///
    /// # Errors
    /// A damaged file or a failed device. Frames returned before the error stay valid
    /// results: callers keep what they decoded and report the error.
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError>;

    /// Like [`Self::next_frame`], except that a live source with no frame to deliver
    /// right now returns [`Poll::Idle`] with the time now about once per [`IDLE_TICK`],
    /// so that work driven by time (idle timeouts, health lines) goes on while the network
    /// is quiet or light. A file never idles.
    ///
    /// # Errors
    /// As [`Self::next_frame`].
    fn poll(&mut self) -> Result<Poll<'_>, CaptureError> {
        Ok(self.next_frame()?.map_or(Poll::End, Poll::Frame))
    }

    /// What the source counted so far, for the closing report.
    fn stats(&self) -> SourceStats;
}

/// How often a live source that has to wait for frames says so ([`Poll::Idle`]); also
/// the longest it sleeps on a quiet device when polled.
pub const IDLE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// What [`PacketSource::poll`] found.
#[derive(Debug)]
pub enum Poll<'a> {
    /// The next frame.
    Frame(Frame<'a>),
    /// No frame to deliver now, and an [`IDLE_TICK`] since the last `Idle`: the time now.
    Idle(Timestamp),
    /// The end: end of file, or Ctrl-C on a live device.
    End,
}

/// What a source counted: shown to the user at the end, so nothing is lost silently.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Frames delivered.
    pub frames: u64,
    /// Captured bytes delivered.
    pub bytes: u64,
    /// Frames whose capture is shorter than the wire length.
    pub truncated: u64,
    /// Live capture only: the kernel program's counters.
    pub kernel: Option<KernelCounters>,
}

/// The kernel program's counters, summed over CPUs (see `sniffer_ebpf::Counter`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelCounters {
    /// Packets the filter ran on.
    pub seen: u64,
    /// Packets that matched.
    pub matched: u64,
    /// Wire bytes of matched packets.
    pub matched_bytes: u64,
    /// Records lost because the ring buffer was full.
    pub ring_full: u64,
    /// Packets whose copy failed.
    pub copy_failed: u64,
    /// Records cut at the snap length.
    pub truncated: u64,
    /// Non-first TCP fragments, IPv4 or IPv6 (no ports: port tests are false for them).
    pub non_first_fragment: u64,
}

/// Why a source stopped early.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Reading a capture file failed.
    #[error(transparent)]
    File(#[from] file::FileError),
    /// Live capture failed.
    #[error(transparent)]
    Live(#[from] live::LiveError),
}
