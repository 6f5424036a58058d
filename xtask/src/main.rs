//! Project tasks. `cargo xtask --help` lists them.
//!
//! Every task that builds, tests or runs something first installs what the machine lacks
//! (`setup`), here and nowhere else, so each of them works on a fresh machine:
//! [`Command::needs`] says what each task needs.

mod bench;
mod bench_live;
mod build_ebpf;
mod demo;
mod dist;
mod floor;
mod layers;
mod run;
mod setup;
mod soak;
mod test;
mod util;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "sniffer's project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Do not install what is missing first (`cargo xtask setup`).
    #[arg(long, global = true)]
    no_setup: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what is missing: nightly rust-src, bpf-linker, Debian packages. Idempotent.
    Setup(setup::Options),
    /// Build everything in release mode (the eBPF program included) and say where it is.
    Build,
    /// Build the eBPF program (sniffer/build.rs does this on any build; this shows it).
    BuildEbpf(build_ebpf::Options),
    /// Build and run sniffer on a device: `cargo xtask run --iface wlan1 [-- ARGS…]`.
    Run(run::Options),
    /// Check that the library's imports run down the layers declared in lib.rs.
    Layers(layers::Options),
    /// Run every test: unit, corpus, fuzz smoke, and the root-only netns tests.
    Test(test::Options),
    /// The main job, end to end: serve an MP3 in a namespace, sniff it live, save it.
    Demo(demo::Options),
    /// Shell completions (bash, zsh, fish) and man pages, into target/dist/.
    Dist(dist::Options),
    /// Live soak: sniffer as a monitor under mixed traffic for N minutes; fails on growth.
    Soak(soak::Options),
    /// Offline benchmarks against tcpdump, tshark and tcpflow on the same input.
    Bench(bench::Options),
    /// Live benchmark: throughput over veth with and without the sniffer, vs tcpdump.
    BenchLive(bench_live::Options),
}

/// What a task needs installed before it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Nothing beyond cargo.
    Nothing,
    /// The eBPF toolchain: nightly `rust-src` and `bpf-linker`.
    Toolchain,
    /// The toolchain and the Debian packages (nginx, curl, tshark, tcpdump, ...).
    Everything,
}

impl Command {
    const fn needs(&self) -> Needs {
        match self {
            Self::Setup(_) | Self::Layers(_) | Self::Dist(_) => Needs::Nothing,
            Self::Build | Self::BuildEbpf(_) | Self::Run(_) => Needs::Toolchain,
            Self::Test(_) | Self::Demo(_) | Self::Soak(_) | Self::Bench(_) | Self::BenchLive(_) => {
                Needs::Everything
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.needs() {
        _ if cli.no_setup => {}
        Needs::Nothing => {}
        Needs::Toolchain => setup::run(&setup::Options { no_apt: true })?,
        Needs::Everything => setup::run(&setup::Options::default())?,
    }
    match cli.command {
        Command::Setup(o) => setup::run(&o),
        Command::Build => {
            util::run_loud(util::cargo().args(["build", "--workspace", "--release"]))?;
            eprintln!(
                "xtask build: {}",
                util::target_dir().join("release/sniffer").display()
            );
            Ok(())
        }
        Command::BuildEbpf(o) => build_ebpf::run(&o),
        Command::Run(o) => run::run(&o),
        Command::Layers(o) => layers::run(&o),
        Command::Test(o) => test::run(&o),
        Command::Demo(o) => demo::run(&o),
        Command::Soak(o) => soak::run(&o),
        Command::Dist(o) => dist::run(&o),
        Command::Bench(o) => bench::run(&o),
        Command::BenchLive(o) => bench_live::run(&o),
    }
}
