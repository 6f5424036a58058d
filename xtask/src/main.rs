//! Project tasks. `cargo xtask --help` lists them; every task runs `setup` first.

mod bench;
mod bench_live;
mod build_ebpf;
mod demo;
mod floor;
mod layers;
mod run;
mod setup;
mod test;
mod util;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "sniffer's project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what is missing: nightly rust-src, bpf-linker, Debian packages. Idempotent.
    Setup(setup::Options),
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
    /// Offline benchmarks against tcpdump, tshark and tcpflow on the same input.
    Bench(bench::Options),
    /// Live benchmark: throughput over veth with and without the sniffer, vs tcpdump.
    BenchLive(bench_live::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup(o) => setup::run(&o),
        Command::BuildEbpf(o) => build_ebpf::run(&o),
        Command::Run(o) => run::run(&o),
        Command::Layers(o) => layers::run(&o),
        Command::Test(o) => test::run(&o),
        Command::Demo(o) => demo::run(&o),
        Command::Bench(o) => bench::run(&o),
        Command::BenchLive(o) => bench_live::run(&o),
    }
}
