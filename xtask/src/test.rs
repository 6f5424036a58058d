//! `cargo xtask test`: every test, as CI runs it (`.ci/run` calls this).
//!
//! 1. `setup` installs what is missing (toolchain parts, bpf-linker, Debian packages);
//! 2. `cargo build --workspace --all-targets` (builds the eBPF program via aya-build);
//! 3. `cargo test --workspace`: unit tests, corpus tests (`../shared/captures`), the
//!    generated-capture test, and, as root, the network-namespace tests in `tests/`.

use clap::Args;

use crate::util::{cargo, run_loud};

#[derive(Debug, Args)]
pub struct Options {
    /// Skip `cargo xtask setup`.
    #[arg(long)]
    pub no_setup: bool,
    /// Also check formatting and run clippy with warnings denied.
    #[arg(long)]
    pub lint: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    if !options.no_setup {
        crate::setup::run(&crate::setup::Options::default())?;
    }
    if !crate::util::is_root() {
        eprintln!(
            "xtask test: not root: the live-capture and namespace tests will skip \
             (run as root for the full suite)"
        );
    }
    if options.lint {
        run_loud(cargo().args(["fmt", "--all", "--check"]))?;
        run_loud(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    run_loud(cargo().args(["build", "--workspace", "--all-targets"]))?;
    run_loud(
        cargo()
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(&options.args),
    )
}
