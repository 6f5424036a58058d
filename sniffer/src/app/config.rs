//! The validated configuration: what [`super::cli`] parsed, checked once, so the rest of
//! the program never sees a bad value. Each layer's own settings ([`LiveOptions`],
//! [`FlowConfig`], ...) are defined beside the layer and only built here.

use std::{path::PathBuf, time::Duration};

use sniffer::{
    Direction,
    capture::{Input, LiveOptions},
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
}

/// `sniffer http` (the default command).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Input.
    pub input: Input,
    /// Stop after this many packets (`-c`).
    pub count: Option<u64>,
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
}

/// The disk budget of a live run without `--max-disk`: what the output directory holds
/// now plus the free space of its file system, less a reserve of 10% of the file system
/// (at least 1 GiB), as free-space retention keeps it. A monitor left running for weeks
/// then never fills the disk: its oldest files go first. `None` when the file system
/// cannot be asked (then there is no budget).
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
    let size = st.f_blocks * st.f_frsize;
    let free = st.f_bavail * st.f_frsize;
    let reserve = (size / 10).max(1 << 30);
    let held: u64 = std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    Some((held + free).saturating_sub(reserve))
}

/// `sniffer capture`.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Input.
    pub input: Input,
    /// Stop after this many packets (`-c`).
    pub count: Option<u64>,
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
    /// Input.
    pub input: Input,
    /// Stop after this many packets (`-c`).
    pub count: Option<u64>,
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
}

/// `sniffer follow`.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// Input.
    pub input: Input,
    /// Stop after this many packets (`-c`).
    pub count: Option<u64>,
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
                    input: input(&cli.http.input)?,
                    count: cli.http.input.count,
                    pcapng: write.extension().is_some_and(|e| e == "pcapng"),
                    write,
                    run_as: run_as(&cli.http.input)?,
                })
            }
            None => Self::Http(http_config(cli.http)?),
            Some(Command::Http(args)) => Self::Http(http_config(args)?),
            Some(Command::Capture(args)) => Self::Capture(CaptureConfig {
                input: input(&args.input)?,
                count: args.input.count,
                write: args.write,
                pcapng: args.pcapng,
                run_as: run_as(&args.input)?,
            }),
            Some(Command::Flows(args)) => Self::Flows(FlowsConfig {
                input: input(&args.input)?,
                count: args.input.count,
                flow: flow(&args.flow)?,
                format: FlowsFormat {
                    json: args.json,
                    wide: args.wide,
                    absolute_time: args.absolute_time,
                },
                write_flows: args.write_flows,
                stats_interval: stats_interval(args.stats_interval)?,
                run_as: run_as(&args.input)?,
            }),
            Some(Command::Follow(args)) => {
                let select = match (&args.flow_spec, args.stream) {
                    (Some(spec), _) => parse_flow_spec(spec)?,
                    (None, Some(stream)) => FlowSelector::Stream(stream),
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
                    input: input(&args.input)?,
                    count: args.input.count,
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
        input: input(&args.input)?,
        count: args.input.count,
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
    })
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

fn input(args: &cli::InputArgs) -> Result<Input, ConfigError> {
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
        if let Some(0) = args.ports.iter().copied().find(|&p| p == 0) {
            return Err(ConfigError::OutOfRange {
                option: "port",
                value: "0".into(),
                why: "must be 1..=65535",
            });
        }
        let ports = if args.all_tcp {
            Vec::new()
        } else if args.ports.is_empty() {
            vec![80]
        } else {
            args.ports.clone()
        };
        return Ok(Input::Live(LiveOptions {
            iface: iface.clone(),
            ports,
            all_tcp: args.all_tcp,
            snaplen: args.snaplen,
            ring_bytes: args.ring_mib << 20,
        }));
    }
    if args.read.is_empty() {
        return Err(ConfigError::NoInput);
    }
    Ok(Input::Files(args.read.clone()))
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
}
