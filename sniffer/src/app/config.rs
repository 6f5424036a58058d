//! The validated configuration: what [`super::cli`] parsed, checked once, so the rest of
//! the program never sees a bad value. Each layer's own settings ([`LiveOptions`],
//! [`FlowConfig`], ...) are defined beside the layer and only built here.

use std::{path::PathBuf, time::Duration};

use sniffer::{
    Direction,
    capture::{Input, LiveOptions},
    events::{BadUrl, Destination, EventsConfig},
    flow::FlowConfig,
    output::{
        flows::FlowsFormat,
        follow::{FlowSelector, FollowFormat},
    },
};

use super::cli::{self, Cli, Command, DirArg, FormatArg};

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
    /// An `--events` URL that names no destination.
    #[error(transparent)]
    Events(#[from] BadUrl),
}

/// `sniffer http` (the default command).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Input.
    pub input: Input,
    /// Reassembly bounds.
    pub flow: FlowConfig,
    /// Content-Type globs to save; empty saves nothing unless `extract_all`.
    pub extract: Vec<glob::Pattern>,
    /// Save every body.
    pub extract_all: bool,
    /// Output directory.
    pub out: PathBuf,
    /// Stop after the first saved file.
    pub once: bool,
    /// JSON lines output.
    pub json: bool,
    /// Where events go.
    pub events: EventsConfig,
    /// Seed of the Community IDs.
    pub community_id_seed: u16,
}

/// `sniffer capture`.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Input.
    pub input: Input,
    /// Output file (`-` is standard output).
    pub write: PathBuf,
    /// pcapng instead of pcap.
    pub pcapng: bool,
    /// Stop after this many packets.
    pub count: Option<u64>,
}

/// `sniffer flows`.
#[derive(Clone, Debug)]
pub struct FlowsConfig {
    /// Input.
    pub input: Input,
    /// Reassembly bounds.
    pub flow: FlowConfig,
    /// Table or JSON lines, and which columns.
    pub format: FlowsFormat,
    /// tcpflow-style per-direction files.
    pub write_flows: Option<PathBuf>,
    /// Where events go.
    pub events: EventsConfig,
}

/// `sniffer follow`.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// Input.
    pub input: Input,
    /// Reassembly bounds.
    pub flow: FlowConfig,
    /// The session.
    pub select: FlowSelector,
    /// Output format.
    pub format: FollowFormat,
    /// Only this direction.
    pub dir: Option<Direction>,
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
}

impl Config {
    /// Validate a parsed command line.
    ///
    /// # Errors
    /// Any value the program cannot work with, named with the option it came from.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        Ok(match cli.command {
            None => Self::Http(http_config(cli.http)?),
            Some(Command::Http(args)) => Self::Http(http_config(args)?),
            Some(Command::Capture(args)) => Self::Capture(CaptureConfig {
                input: input(&args.input)?,
                write: args.write,
                pcapng: args.pcapng,
                count: args.count,
            }),
            Some(Command::Flows(args)) => Self::Flows(FlowsConfig {
                input: input(&args.input)?,
                flow: flow(&args.flow)?,
                format: FlowsFormat {
                    json: args.json,
                    wide: args.wide,
                    absolute_time: args.absolute_time,
                    community_id_seed: args.events.community_id_seed,
                },
                write_flows: args.write_flows,
                events: events(&args.events)?,
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
                    flow: flow(&args.flow)?,
                    select,
                    format,
                    dir,
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
        flow: flow(&args.flow)?,
        extract,
        extract_all: args.extract_all,
        out: args.out,
        once: args.once,
        json: args.json,
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
