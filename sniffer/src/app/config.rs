//! The validated configuration: what [`super::cli`] parsed, checked once, so the rest of
//! the program never sees a bad value. Each layer's own settings ([`LiveOptions`],
//! [`FlowConfig`], ...) are defined beside the layer and only built here.

use std::{path::PathBuf, time::Duration};

use sniffer::{
    Direction,
    capture::{Input, KernelFilter, LiveOptions},
    events::{BadUrl, Destination, EventsConfig},
    filter::{Filter, FilterError},
    flow::FlowConfig,
    output::{
        flows::FlowsFormat,
        follow::{FlowSelector, FollowFormat},
    },
};

use super::{
    cli::{self, Cli, Command, DirArg, FormatArg},
    privilege::{self, RunAs},
};

/// A command line that parses but makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `-r` nor `-i`.
    #[error("no input: give -r FILE (a pcap/pcapng dump) or -i DEV (a live device)")]
    NoInput,
    /// A value out of its range.
    #[error("--{option} {value}: {why}")]
    OutOfRange {
        /// The option's long name.
        option: &'static str,
        /// What was given.
        value: String,
        /// What is allowed.
        why: &'static str,
    },
    /// A `--flow` that is not `ADDR:PORT-ADDR:PORT`.
    #[error(
        "--flow {0:?}: expected ADDR:PORT-ADDR:PORT, e.g. 10.0.0.1:51234-10.0.0.2:80 or [::1]:5000-[::1]:80"
    )]
    BadFlowSpec(String),
    /// `--format raw` without `--dir`.
    #[error("--format raw writes one direction's exact bytes: add --dir orig or --dir resp")]
    RawNeedsDir,
    /// `-Z USER` (or its default) names no user of this system.
    #[error(
        "-Z {user}{}: no such user: name another with -Z USER, or keep root with -Z root",
        if *.default { " (the default for live capture as root)" } else { "" }
    )]
    NoSuchUser {
        /// The name looked up.
        user: String,
        /// It was the default, not given.
        default: bool,
    },
    /// A filter expression that cannot be used.
    #[error("filter: {0}")]
    Filter(#[from] FilterError),
    /// `follow` without --flow, whose first word is not a stream number.
    #[error(
        "follow {0:?}: expected a stream number, as `sniffer flows` lists them (or --flow A-B; \
         a filter expression goes after the stream number)"
    )]
    BadStream(String),
    /// An `--events` URL that names no destination.
    #[error(transparent)]
    Events(#[from] BadUrl),
}

/// Where packets come from, and what userspace must still filter.
#[derive(Clone, Debug)]
pub struct Source {
    /// Files, or a live device with what its kernel program selects.
    pub input: Input,
    /// The filter userspace applies before decode: the whole expression for files, what
    /// the kernel could not decide for a live device; `None` when nothing is left to do.
    pub filter: Option<Filter>,
    /// What is selected, for messages: the expression, `port 80`, or `all TCP`.
    pub selects: String,
    /// Stop after this many packets (`-c`).
    pub count: Option<u64>,
}

/// `sniffer http` (the default command).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Input, and what is filtered.
    pub source: Source,
    /// Reassembly bounds.
    pub flow: FlowConfig,
    /// Content-Type globs to save; empty saves nothing unless `extract_all`.
    pub extract: Vec<glob::Pattern>,
    /// Save every body.
    pub extract_all: bool,
    /// One file per title of a radio stream (off with `--no-split`).
    pub split_tracks: bool,
    /// Output directory.
    pub out: PathBuf,
    /// Stop after the first saved file.
    pub once: bool,
    /// JSON lines output.
    pub json: bool,
    /// No line per transaction (`-q`).
    pub quiet: bool,
    /// Save bodies at all (`--no-save` lists only).
    pub save: bool,
    /// Bytes the output directory may hold (`--max-disk`); live runs get
    /// [`default_budget`] when it is not given.
    pub max_disk: Option<u64>,
    /// Store identical bodies once (`--dedup`).
    pub dedup: bool,
    /// Print a health line this often.
    pub stats_interval: Option<Duration>,
    /// What to keep once the input and the output are open.
    pub run_as: RunAs,
    /// Where events go.
    pub events: EventsConfig,
    /// Seed of the Community IDs.
    pub community_id_seed: u16,
}

/// The disk budget of a live run without `--max-disk`: what the output directory holds
/// now plus half the space free on its file system. A monitor left running for weeks then
/// never fills the disk (its oldest files go first), and leaves the other half to
/// everything else. `None` when the file system cannot be asked (then there is no
/// budget).
pub fn default_budget(out: &std::path::Path) -> Option<u64> {
    // The directory may not exist yet: ask about the nearest ancestor that does.
    let mut at = out;
    while !at.exists() {
        at = at.parent().filter(|p| !p.as_os_str().is_empty())?;
    }
    let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `c` is a valid path string; `st` is written by the kernel only.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &raw mut st) != 0 {
            return None;
        }
        st
    };
    let free = st.f_bavail * st.f_frsize;
    let held: u64 = std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    Some(held + free / 2)
}

/// `sniffer capture`.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Input, and what is filtered.
    pub source: Source,
    /// Output file (`-` is standard output).
    pub write: PathBuf,
    /// pcapng instead of pcap.
    pub pcapng: bool,
    /// What to keep once the input and the output are open.
    pub run_as: RunAs,
}

/// `sniffer flows`.
#[derive(Clone, Debug)]
pub struct FlowsConfig {
    /// Input, and what is filtered.
    pub source: Source,
    /// Reassembly bounds.
    pub flow: FlowConfig,
    /// Table or JSON lines, and which columns.
    pub format: FlowsFormat,
    /// tcpflow-style per-direction files.
    pub write_flows: Option<PathBuf>,
    /// Print a health line this often.
    pub stats_interval: Option<Duration>,
    /// What to keep once the input and the output are open.
    pub run_as: RunAs,
    /// Where events go.
    pub events: EventsConfig,
}

/// `sniffer follow`.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// Input, and what is filtered.
    pub source: Source,
    /// Reassembly bounds.
    pub flow: FlowConfig,
    /// The session.
    pub select: FlowSelector,
    /// Output format.
    pub format: FollowFormat,
    /// Only this direction.
    pub dir: Option<Direction>,
    /// What to keep once the input is open.
    pub run_as: RunAs,
}

/// One validated command.
#[derive(Clone, Debug)]
pub enum Config {
    /// Watch HTTP.
    Http(HttpConfig),
    /// Write packets.
    Capture(CaptureConfig),
    /// List sessions.
    Flows(FlowsConfig),
    /// Print one session.
    Follow(FollowConfig),
    /// List the devices (`-D`).
    ListInterfaces,
}

impl Config {
    /// Validate a parsed command line.
    ///
    /// # Errors
    /// Any value the program cannot work with, named with the option it came from.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        if cli.list_interfaces {
            return Ok(Self::ListInterfaces);
        }
        Ok(match cli.command {
            None if cli.write.is_some() => {
                let write = cli.write.expect("checked");
                Self::Capture(CaptureConfig {
                    source: source(&cli.http.input, &cli.http.filter)?,
                    pcapng: write.extension().is_some_and(|e| e == "pcapng"),
                    write,
                    run_as: run_as(&cli.http.input)?,
                })
            }
            None => Self::Http(http_config(cli.http)?),
            Some(Command::Http(args)) => Self::Http(http_config(args)?),
            Some(Command::Capture(args)) => Self::Capture(CaptureConfig {
                source: source(&args.input, &args.filter)?,
                write: args.write,
                pcapng: args.pcapng,
                run_as: run_as(&args.input)?,
            }),
            Some(Command::Flows(args)) => Self::Flows(FlowsConfig {
                source: source(&args.input, &args.filter)?,
                flow: flow(&args.flow)?,
                format: FlowsFormat {
                    json: args.json,
                    wide: args.wide,
                    absolute_time: args.absolute_time,
                    community_id_seed: args.events.community_id_seed,
                },
                write_flows: args.write_flows,
                stats_interval: stats_interval(args.stats_interval)?,
                run_as: run_as(&args.input)?,
                events: events(&args.events)?,
            }),
            Some(Command::Follow(args)) => {
                // With --flow there is no stream number: every word is the expression's.
                let (select, words) = match (&args.flow_spec, args.stream) {
                    (Some(spec), first) => (
                        parse_flow_spec(spec)?,
                        first.into_iter().chain(args.filter).collect(),
                    ),
                    (None, Some(stream)) => (
                        FlowSelector::Stream(
                            stream
                                .parse()
                                .map_err(|_| ConfigError::BadStream(stream.clone()))?,
                        ),
                        args.filter,
                    ),
                    (None, None) => unreachable!("clap requires STREAM or --flow"),
                };
                let dir = args.dir.map(|d| match d {
                    DirArg::Orig => Direction::Orig,
                    DirArg::Resp => Direction::Resp,
                });
                let format = match args.format {
                    FormatArg::Ascii => FollowFormat::Ascii,
                    FormatArg::Hex => FollowFormat::Hex,
                    FormatArg::Raw => FollowFormat::Raw,
                    FormatArg::Json => FollowFormat::Json,
                };
                if format == FollowFormat::Raw && dir.is_none() {
                    return Err(ConfigError::RawNeedsDir);
                }
                Self::Follow(FollowConfig {
                    source: source(&args.input, &words)?,
                    flow: flow(&args.flow)?,
                    select,
                    format,
                    dir,
                    run_as: run_as(&args.input)?,
                })
            }
        })
    }
}

fn http_config(args: cli::HttpArgs) -> Result<HttpConfig, ConfigError> {
    let globs = if args.extract.is_empty() && !args.extract_all {
        vec!["audio/*".to_owned()]
    } else {
        args.extract
    };
    let extract = globs
        .iter()
        .map(|g| {
            glob::Pattern::new(&g.to_ascii_lowercase()).map_err(|_| ConfigError::OutOfRange {
                option: "extract",
                value: g.clone(),
                why: "not a valid glob (like audio/* or application/pdf)",
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(HttpConfig {
        source: source(&args.input, &args.filter)?,
        flow: flow(&args.flow)?,
        extract,
        extract_all: args.extract_all,
        split_tracks: !args.no_split,
        out: args.out,
        once: args.once,
        json: args.json,
        quiet: args.quiet,
        save: !args.no_save,
        max_disk: args
            .max_disk
            .as_deref()
            .map(|v| parse_size(v).ok_or_else(|| ConfigError::OutOfRange {
                option: "max-disk",
                value: v.to_owned(),
                why: "expected a size in bytes, optionally with K, M, G or T (powers of 1024), e.g. 500M",
            }))
            .transpose()?,
        dedup: args.dedup,
        stats_interval: stats_interval(args.stats_interval)?,
        run_as: run_as(&args.input)?,
        events: events(&args.events)?,
        community_id_seed: args.events.community_id_seed,
    })
}

fn events(args: &cli::EventArgs) -> Result<EventsConfig, ConfigError> {
    if args.events_queue == 0 {
        return Err(ConfigError::OutOfRange {
            option: "events-queue",
            value: "0".into(),
            why: "must be at least 1",
        });
    }
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    Ok(EventsConfig {
        destinations: args
            .events
            .iter()
            .map(|u| Destination::parse(u))
            .collect::<Result<_, _>>()?,
        sensor: args.sensor.clone().or_else(host_name),
        maxlen: args.events_maxlen,
        queue: args.events_queue,
        flush_timeout: Duration::from_secs(args.events_flush_timeout),
        stats_interval: secs(args.events_stats_interval),
    })
}

/// This host's name (`gethostname`), if it has one.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec())
        .ok()
        .filter(|h| !h.is_empty())
}

/// `500M`, `2G`, `1048576`, `10KiB`: bytes, with K, M, G, T as powers of 1024.
fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..digits].parse().ok()?;
    let unit = v[digits..].trim().to_ascii_uppercase();
    let shift = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// `-Z`: whom to run as once the input and the outputs are open.
fn run_as(args: &cli::InputArgs) -> Result<RunAs, ConfigError> {
    privilege::run_as(args.user.as_deref(), args.iface.is_some()).map_err(|user| {
        ConfigError::NoSuchUser {
            user,
            default: args.user.is_none(),
        }
    })
}

fn stats_interval(secs: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    match secs {
        Some(0) => Err(ConfigError::OutOfRange {
            option: "stats-interval",
            value: "0".into(),
            why: "must be at least 1 (seconds)",
        }),
        other => Ok(other.map(Duration::from_secs)),
    }
}

/// The input and its filter: the expression (`words`), else `--port`, else, live, port
/// 80 unless `--all-tcp`; a live filter is split between the kernel and userspace.
fn source(args: &cli::InputArgs, words: &[String]) -> Result<Source, ConfigError> {
    if args.ports.contains(&0) {
        return Err(ConfigError::OutOfRange {
            option: "port",
            value: "0".into(),
            why: "must be 1..=65535",
        });
    }
    let text = words.join(" ");
    let filter = if !text.trim().is_empty() {
        Some(Filter::parse(&text)?)
    } else if !args.ports.is_empty() {
        Some(Filter::ports(&args.ports))
    } else {
        None
    };
    if let Some(iface) = &args.iface {
        if !(1..=sniffer_ebpf::MAX_SNAPLEN).contains(&args.snaplen) {
            return Err(ConfigError::OutOfRange {
                option: "snaplen",
                value: args.snaplen.to_string(),
                why: "must be 1..=65536",
            });
        }
        if !args.ring_mib.is_power_of_two() || args.ring_mib > 1024 {
            return Err(ConfigError::OutOfRange {
                option: "ring-mib",
                value: args.ring_mib.to_string(),
                why: "must be a power of two from 1 to 1024",
            });
        }
        let filter = filter.or_else(|| (!args.all_tcp).then(|| Filter::ports(&[80])));
        let (kernel, userspace, selects) = match filter {
            Some(f) => {
                let plan = f.live();
                (plan.kernel, plan.userspace, f.text().to_owned())
            }
            None => (KernelFilter::all_tcp(), None, "all TCP".to_owned()),
        };
        return Ok(Source {
            input: Input::Live(LiveOptions {
                iface: iface.clone(),
                filter: kernel,
                snaplen: args.snaplen,
                ring_bytes: args.ring_mib << 20,
            }),
            filter: userspace,
            selects,
            count: args.count,
        });
    }
    if args.read.is_empty() {
        return Err(ConfigError::NoInput);
    }
    Ok(Source {
        input: Input::Files(args.read.clone()),
        selects: filter
            .as_ref()
            .map_or_else(|| "all TCP".to_owned(), |f| f.text().to_owned()),
        filter,
        count: args.count,
    })
}

fn flow(args: &cli::FlowArgs) -> Result<FlowConfig, ConfigError> {
    if args.max_sessions == 0 {
        return Err(ConfigError::OutOfRange {
            option: "max-sessions",
            value: "0".into(),
            why: "must be at least 1",
        });
    }
    Ok(FlowConfig {
        max_ooo_bytes: args.max_ooo_bytes,
        memcap: args.memcap,
        max_sessions: args.max_sessions,
        idle_timeout: Duration::from_secs(args.idle_timeout),
    })
}

/// Parse `A:P-B:P` (IPv6 in brackets).
fn parse_flow_spec(spec: &str) -> Result<FlowSelector, ConfigError> {
    let bad = || ConfigError::BadFlowSpec(spec.to_owned());
    // The separator is the '-' that starts the second endpoint: after a port digit.
    let split = spec
        .char_indices()
        .filter(|&(_, c)| c == '-')
        .map(|(i, _)| i)
        .find(|&i| spec[..i].parse::<std::net::SocketAddr>().is_ok())
        .ok_or_else(bad)?;
    let a = spec[..split].parse().map_err(|_| bad())?;
    let b = spec[split + 1..].parse().map_err(|_| bad())?;
    Ok(FlowSelector::Endpoints(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue12_sizes_with_units() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("10KiB"), Some(10 << 10));
        assert_eq!(parse_size("1TB"), Some(1 << 40));
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn flow_spec_v4_and_v6() {
        assert_eq!(
            parse_flow_spec("10.0.0.1:51234-10.0.0.2:80").unwrap(),
            FlowSelector::Endpoints(
                "10.0.0.1:51234".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap()
            )
        );
        assert_eq!(
            parse_flow_spec("[fd00::1]:5000-[fd00::2]:80").unwrap(),
            FlowSelector::Endpoints(
                "[fd00::1]:5000".parse().unwrap(),
                "[fd00::2]:80".parse().unwrap()
            )
        );
        assert!(parse_flow_spec("10.0.0.1-10.0.0.2").is_err());
    }

    /// What each input's filter becomes: the kernel's tables and userspace's residue.
    #[test]
    fn issue13_filters_split_between_the_kernel_and_userspace() {
        let args = |iface: Option<&str>, ports: &[u16], all_tcp: bool| cli::InputArgs {
            read: vec!["x.pcap".into()],
            iface: iface.map(str::to_owned),
            ports: ports.to_vec(),
            all_tcp,
            snaplen: 65535,
            ring_mib: 64,
            count: None,
            user: None,
        };
        let words = |s: &str| -> Vec<String> { s.split(' ').map(str::to_owned).collect() };
        let kernel = |s: &Source| match &s.input {
            Input::Live(l) => l.filter.clone(),
            Input::Files(_) => panic!("live expected"),
        };
        let live = Some("lo");
        let s = source(&args(live, &[], false), &[]).unwrap();
        assert_eq!(kernel(&s), KernelFilter::ports(&[80]));
        assert_eq!((s.filter, s.selects.as_str()), (None, "port 80"));
        let s = source(&args(live, &[], true), &[]).unwrap();
        assert_eq!(kernel(&s), KernelFilter::all_tcp());
        assert_eq!((s.filter, s.selects.as_str()), (None, "all TCP"));
        let s = source(&args(live, &[80, 8080], false), &[]).unwrap();
        assert_eq!(kernel(&s), KernelFilter::ports(&[80, 8080]));
        assert!(s.filter.is_none());
        let s = source(&args(live, &[], false), &words("tcp port 80 or 8080")).unwrap();
        assert_eq!(kernel(&s), KernelFilter::ports(&[80, 8080]));
        assert_eq!(
            (s.filter, s.selects.as_str()),
            (None, "tcp port 80 or 8080")
        );
        // A mask the kernel cannot hold: userspace finishes the job.
        let e = "net 10.0.0.0 mask 255.0.255.0";
        let s = source(&args(live, &[], false), &words(e)).unwrap();
        assert_eq!(s.filter, Some(Filter::parse(e).unwrap()));
        // Files: no filter unless asked; then the whole expression, in userspace.
        let s = source(&args(None, &[], false), &[]).unwrap();
        assert!(matches!(s.input, Input::Files(_)) && s.filter.is_none());
        let s = source(&args(None, &[8080], false), &[]).unwrap();
        assert_eq!(s.filter, Some(Filter::ports(&[8080])));
        let s = source(&args(None, &[], false), &words("port 8080")).unwrap();
        assert_eq!(s.filter, Some(Filter::parse("port 8080").unwrap()));
        assert!(matches!(
            source(&args(None, &[], false), &words("port")),
            Err(ConfigError::Filter(_))
        ));
    }
}
