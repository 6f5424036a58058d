//! The command line, as clap parses it. [`super::config`] turns it into a validated
//! `Config`; nothing here is trusted before that.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// See, and keep, what crossed the wire.
///
/// Without a subcommand, sniffer watches HTTP (like `sniffer http`): it prints one line per
/// transaction and saves matching response bodies (audio by default) into ./sniffed/.
#[derive(Debug, Parser)]
#[command(name = "sniffer", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `sniffer http`'s options, for the default command.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print HTTP transactions and save matching bodies (the default).
    Http(HttpArgs),
    /// Write the packets selected in the kernel to a pcap or pcapng file.
    Capture(CaptureArgs),
    /// One row per TCP session, like `tshark -z conv,tcp`.
    #[command(after_long_help = sniffer::output::flows::COLUMNS)]
    Flows(FlowsArgs),
    /// Print one TCP conversation, like Wireshark's Follow TCP Stream.
    Follow(FollowArgs),
}

/// Where packets come from: capture files or a live device.
#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// Read packets from a pcap/pcapng file (gzip allowed; `-` is standard input).
    /// Repeat to merge several files in timestamp order.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,

    /// Capture live on this device (needs root, or CAP_BPF + CAP_NET_RAW).
    #[arg(
        short = 'i',
        long = "iface",
        value_name = "DEV",
        conflicts_with = "read"
    )]
    pub iface: Option<String>,

    /// TCP port to select in the kernel (repeat for more; default 80).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// Select every TCP packet, whatever its ports.
    #[arg(long, conflicts_with = "ports")]
    pub all_tcp: bool,

    /// Bytes of each packet to capture live (1..=65536).
    #[arg(long, default_value_t = 65535, value_name = "BYTES")]
    pub snaplen: u32,

    /// Size of the kernel ring buffer in MiB (a power of two).
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub ring_mib: u32,
}

/// Bounds on reassembly state; every one is configurable.
#[derive(Debug, Args, Clone)]
pub struct FlowArgs {
    /// Out-of-order bytes buffered per direction before the hole is declared a gap.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub max_ooo_bytes: u64,

    /// Total bytes buffered across all sessions.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub memcap: u64,

    /// Live sessions; beyond it the least recently active one is evicted.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_sessions: usize,

    /// Seconds of inactivity after which a session ends with "timeout".
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub idle_timeout: u64,
}

/// Where events go besides the local outputs, and what names them.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Events (many hosts, one view)")]
pub struct EventArgs {
    /// Send every record (transactions, saved files, ended flows, periodic stats) to URL:
    /// redis://HOST:PORT/KEY (a Redis Stream; rediss:// for TLS) or
    /// file://PATH?rotate=100MB&keep=10 (JSON lines). Repeat for several. Never blocks the
    /// capture: when a destination falls behind or is away, events are dropped and counted.
    #[arg(long = "events", value_name = "URL")]
    pub events: Vec<String>,

    /// The name every event carries as `sensor` (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub sensor: Option<String>,

    /// Seed of the Community ID on flow, transaction and file records (0 unless the tools
    /// whose records are joined use another).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub community_id_seed: u16,

    /// Redis: keep each stream near N entries (XADD MAXLEN ~ N; 0 for no bound).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub events_maxlen: u64,

    /// Events each destination may hold while it is behind or away.
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    pub events_queue: usize,

    /// Seconds between two `stats` events (0: none).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub events_stats_interval: u64,

    /// Seconds to wait at exit for queued events to be delivered.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub events_flush_timeout: u64,
}

/// `sniffer http`.
#[derive(Debug, Args, Clone)]
pub struct HttpArgs {
    /// Input.
    #[command(flatten)]
    pub input: InputArgs,

    /// Reassembly bounds.
    #[command(flatten)]
    pub flow: FlowArgs,

    /// Save responses whose Content-Type matches this glob (repeat; default `audio/*`).
    #[arg(long = "extract", value_name = "GLOB")]
    pub extract: Vec<String>,

    /// Save every response body.
    #[arg(long, conflicts_with = "extract")]
    pub extract_all: bool,

    /// Directory for saved bodies and index.jsonl.
    #[arg(
        long = "out",
        short = 'o',
        default_value = "sniffed",
        value_name = "DIR"
    )]
    pub out: PathBuf,

    /// Stop after the first saved file.
    #[arg(long)]
    pub once: bool,

    /// Print transactions as JSON lines.
    #[arg(long)]
    pub json: bool,

    /// Events.
    #[command(flatten)]
    pub events: EventArgs,
}

/// `sniffer capture`.
#[derive(Debug, Args, Clone)]
pub struct CaptureArgs {
    /// Input (a live device; `-r` re-filters a file).
    #[command(flatten)]
    pub input: InputArgs,

    /// Write packets to this file (`-` for standard output).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: PathBuf,

    /// Write pcapng instead of pcap.
    #[arg(long)]
    pub pcapng: bool,

    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
}

/// `sniffer flows`.
#[derive(Debug, Args, Clone)]
pub struct FlowsArgs {
    /// Input.
    #[command(flatten)]
    pub input: InputArgs,

    /// Reassembly bounds.
    #[command(flatten)]
    pub flow: FlowArgs,

    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Show every column (packets, handshake, conflicts, retransmissions, delivered bytes).
    #[arg(long)]
    pub wide: bool,

    /// Start times as seconds since the epoch, not since the first packet.
    #[arg(short = 't', long)]
    pub absolute_time: bool,

    /// Write each direction of each session to its own file in DIR, tcpflow-style.
    #[arg(long, value_name = "DIR")]
    pub write_flows: Option<PathBuf>,

    /// Events.
    #[command(flatten)]
    pub events: EventArgs,
}

/// How `follow` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FormatArg {
    /// Printable ASCII, other bytes as `.`.
    #[default]
    Ascii,
    /// Hex dump.
    Hex,
    /// Exact bytes of one direction (`--dir`).
    Raw,
    /// JSON lines, one per monologue or gap.
    Json,
}

/// A direction on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirArg {
    /// Client to server.
    Orig,
    /// Server to client.
    Resp,
}

/// `sniffer follow`.
#[derive(Debug, Args, Clone)]
pub struct FollowArgs {
    /// Input.
    #[command(flatten)]
    pub input: InputArgs,

    /// Reassembly bounds.
    #[command(flatten)]
    pub flow: FlowArgs,

    /// Stream index, as `sniffer flows` and Wireshark's tcp.stream number them.
    #[arg(value_name = "STREAM", required_unless_present = "flow_spec")]
    pub stream: Option<u64>,

    /// The session by endpoints: `10.0.0.1:51234-10.0.0.2:80` (IPv6 as `[::1]:80`).
    #[arg(long = "flow", value_name = "A-B", conflicts_with = "stream")]
    pub flow_spec: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,

    /// Only this direction (required for `--format raw`).
    #[arg(long, value_enum)]
    pub dir: Option<DirArg>,
}
