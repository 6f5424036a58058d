//! The command line, as clap parses it. [`super::config`] turns it into a validated
//! `Config`; nothing here is trusted before that.
//!
//! This file names nothing of the library: `cargo xtask dist` compiles it on its own to
//! generate shell completions and man pages.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A few examples, after `sniffer --help`.
const EXAMPLES: &str = "\
Examples:
  sniffer -i wlan0                            watch HTTP live; save audio into ./sniffed/
  sniffer -r dump.pcap --extract 'video/*'    save the videos a capture holds
  sniffer -r dump.pcap --extract-all --json   every body; JSON lines on stdout
  sniffer -r dump.pcap --no-save -q           only the summary: what is in there?
  sniffer flows -r dump.pcap                  one row per TCP session
  sniffer follow -r dump.pcap 3               what was said in session 3
  sniffer capture -i eth0 -w out.pcap         write the selected packets to a file";

/// Examples after `sniffer capture --help`.
const CAPTURE_EXAMPLES: &str = "\
Examples:
  sniffer capture -i eth0 -w out.pcap              port 80, as pcap
  sniffer capture -i eth0 --all-tcp -w - --pcapng  every TCP packet, pcapng on stdout
  sniffer capture -r big.pcap.gz -w small.pcap     re-write (and filter) a capture";

/// Examples after `sniffer follow --help`.
const FOLLOW_EXAMPLES: &str = "\
Examples:
  sniffer follow -r dump.pcap 3                             session 3 as text
  sniffer follow -r dump.pcap --flow 10.0.0.1:51234-10.0.0.2:80 --format hex
  sniffer follow -r dump.pcap 3 --format raw --dir resp > body.bin";

/// What each column of `flows` means, after its `--help`.
const FLOWS_COLUMNS: &str = "\
Columns of the table:
stream     session index, numbered as Wireshark's tcp.stream (follow takes it)
client     the side that opened the session (sent the SYN), ADDR:PORT
server     the other side
start      first packet, seconds since the capture's first packet (-t: since the epoch)
duration   last packet minus first, seconds
c>s bytes  TCP payload client to server as on the wire, retransmissions included
s>c bytes  TCP payload server to client, likewise; tshark -z conv,tcp counts whole
           frames instead (headers included), so its bytes are larger
state      how it ended: fin, rst, timeout, evicted (bounds), open (at the end)
missing    payload bytes never captured (gaps), both ways
--wide adds: c>s pkts, s>c pkts (packets, as tshark counts them), hs (y: SYN and
SYN-ACK seen), conflicts (retransmitted bytes that differed; the first copy wins),
retrans (retransmitted bytes), c>s deliv, s>c deliv (bytes reassembled, each once)";

/// See, and keep, what crossed the wire.
///
/// Without a subcommand, sniffer watches HTTP (like `sniffer http`): it prints one line per
/// transaction and saves matching response bodies (audio by default) into ./sniffed/.
#[derive(Debug, Parser)]
#[command(
    name = "sniffer",
    version,
    args_conflicts_with_subcommands = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `sniffer http`'s options, for the default command.
    #[command(flatten)]
    pub http: HttpArgs,

    /// List the devices live capture can use, as `tcpdump -D` does, and exit.
    #[arg(short = 'D', long)]
    pub list_interfaces: bool,

    /// Write the packets to FILE instead of watching HTTP: the same as
    /// `sniffer capture -w FILE` (pcapng when FILE ends in .pcapng).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Warnings in full, with their source and time (-vv: also debugging detail).
    /// Without it, each warning is one `sniffer: warning: …` line.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print HTTP transactions and save matching bodies (the default).
    Http(HttpArgs),
    /// Write the packets selected in the kernel to a pcap or pcapng file.
    #[command(after_help = CAPTURE_EXAMPLES)]
    Capture(CaptureArgs),
    /// One row per TCP session, like `tshark -z conv,tcp`.
    #[command(after_long_help = FLOWS_COLUMNS)]
    Flows(FlowsArgs),
    /// Print one TCP conversation, like Wireshark's Follow TCP Stream.
    #[command(after_help = FOLLOW_EXAMPLES)]
    Follow(FollowArgs),
}

/// Where packets come from: capture files or a live device.
#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// Read packets from a pcap/pcapng file (gzip allowed; `-` is standard input).
    /// Repeat to merge several files in timestamp order.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,

    /// Capture live on this device (`any`: every device; `-D` lists them). Needs root, or
    /// CAP_BPF + CAP_NET_RAW.
    #[arg(
        short = 'i',
        long = "iface",
        value_name = "DEV",
        conflicts_with = "read"
    )]
    pub iface: Option<String>,

    /// Stop after N packets.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,

    /// TCP port to select (repeat for more): shorthand for the expression
    /// `port A or port B …`. Live capture selects port 80 when neither this, --all-tcp
    /// nor an expression is given; a file is read whole.
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

    /// Once the device and the outputs are open, run as USER with no capabilities
    /// (when started as root; live capture's default is `nobody`). `-Z root` keeps root.
    #[arg(short = 'Z', long = "user", value_name = "USER")]
    pub user: Option<String>,
}

/// Bounds on reassembly state; every one is configurable.
#[derive(Debug, Args, Clone)]
pub struct FlowArgs {
    /// Out-of-order bytes buffered per direction before the hole is declared a gap.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub max_ooo_bytes: u64,

    /// Memory held for all sessions: table entries, reassembly and HTTP state, buffered
    /// bytes, files being written. Near it, sessions are evicted (see --max-sessions).
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub memcap: u64,

    /// Live sessions; beyond it one is evicted: a closed one lingering, else one never
    /// answered (a SYN flood's), else the least recently active.
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

    /// Keep each radio stream (icy-metaint) as one file instead of one file per title
    /// (the metadata blocks are removed either way).
    #[arg(long)]
    pub no_split: bool,

    /// Stop after the first saved file.
    #[arg(long)]
    pub once: bool,

    /// List transactions only: save nothing, create no directory.
    #[arg(long, conflicts_with_all = ["extract", "extract_all", "once"])]
    pub no_save: bool,

    /// Bytes the output directory may hold (e.g. 500M, 20G); the oldest saved files are
    /// deleted to stay within it. Live runs use at most half the space free at start by
    /// default.
    #[arg(long, value_name = "BYTES")]
    pub max_disk: Option<String>,

    /// Store a body whose sha256 was already saved once: later copies are hard links.
    #[arg(long)]
    pub dedup: bool,

    /// Print transactions as JSON lines.
    #[arg(long)]
    pub json: bool,

    /// No line per transaction: the summary only.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Print a JSON line of health (counters, drops, sessions, memory, files) to stderr
    /// every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<u64>,
    /// Filter expression in tcpdump's syntax (pcap-filter: host, net, port, portrange,
    /// src, dst, tcp, ip, ip6, and, or, not, parentheses); the words are joined with
    /// spaces. It selects `tcp and (EXPRESSION)`, in the kernel for live capture.
    #[arg(value_name = "EXPRESSION", conflicts_with_all = ["ports", "all_tcp"])]
    pub filter: Vec<String>,
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

    /// Filter expression in tcpdump's syntax (pcap-filter: host, net, port, portrange,
    /// src, dst, tcp, ip, ip6, and, or, not, parentheses); the words are joined with
    /// spaces. It selects `tcp and (EXPRESSION)`, in the kernel for live capture.
    #[arg(value_name = "EXPRESSION", conflicts_with_all = ["ports", "all_tcp"])]
    pub filter: Vec<String>,
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

    /// Print a JSON line of health (counters, drops, sessions, memory) to stderr every
    /// SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<u64>,
    /// Filter expression in tcpdump's syntax (pcap-filter: host, net, port, portrange,
    /// src, dst, tcp, ip, ip6, and, or, not, parentheses); the words are joined with
    /// spaces. It selects `tcp and (EXPRESSION)`, in the kernel for live capture.
    #[arg(value_name = "EXPRESSION", conflicts_with_all = ["ports", "all_tcp"])]
    pub filter: Vec<String>,
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

    /// Stream index, as `sniffer flows` and Wireshark's tcp.stream number them. With
    /// --flow there is none, and the words that follow are all the expression.
    #[arg(value_name = "STREAM", required_unless_present = "flow_spec")]
    pub stream: Option<String>,

    /// The session by endpoints: `10.0.0.1:51234-10.0.0.2:80` (IPv6 as `[::1]:80`).
    #[arg(long = "flow", value_name = "A-B")]
    pub flow_spec: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,

    /// Only this direction (required for `--format raw`).
    #[arg(long, value_enum)]
    pub dir: Option<DirArg>,

    /// Filter expression in tcpdump's syntax (pcap-filter: host, net, port, portrange,
    /// src, dst, tcp, ip, ip6, and, or, not, parentheses); the words are joined with
    /// spaces. It selects `tcp and (EXPRESSION)`, in the kernel for live capture.
    #[arg(value_name = "EXPRESSION", conflicts_with_all = ["ports", "all_tcp"])]
    pub filter: Vec<String>,
}
