//! `cargo xtask run --iface DEV [-- ARGS…]`: build everything (the eBPF program included)
//! and start sniffer live on DEV. Without ARGS it runs the default command: print HTTP
//! transactions on port 80 and save audio into ./sniffed/.

use clap::Args;

use crate::util::{cargo, run_loud, target_dir};

#[derive(Debug, Args)]
pub struct Options {
    /// The device to sniff on.
    #[arg(long, short = 'i')]
    pub iface: String,
    /// Build in debug mode (default: release).
    #[arg(long)]
    pub debug: bool,
    /// Arguments passed to sniffer after `-i DEV`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let profile = if options.debug { "debug" } else { "release" };
    let mut build = cargo();
    build.args(["build", "--package", "sniffer", "--bin", "sniffer"]);
    if !options.debug {
        build.arg("--release");
    }
    run_loud(&mut build)?;
    let bin = target_dir().join(profile).join("sniffer");
    // A subcommand given after `--` goes first: `-- flows` → `sniffer flows -i DEV`.
    let mut cmd = std::process::Command::new(bin);
    let (sub, rest) = match options.args.split_first() {
        Some((first, rest)) if !first.starts_with('-') => (Some(first.clone()), rest.to_vec()),
        _ => (None, options.args.clone()),
    };
    cmd.args(sub).args(["-i", &options.iface]).args(rest);
    eprintln!("xtask: $ {}", crate::util::display(&cmd));
    // Become sniffer: its output, Ctrl-C handling and exit code are the user's.
    let err = std::os::unix::process::CommandExt::exec(&mut cmd);
    Err(anyhow::Error::new(err)
        .context(format!("could not start `{}`", crate::util::display(&cmd))))
}
