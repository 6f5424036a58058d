//! `cargo xtask test`: every test, as CI runs it (`.ci/run` calls this).
//!
//! 1. `setup` installs what is missing (toolchain parts, bpf-linker, Debian packages), as
//!    before every task that builds (see `main.rs`);
//! 2. `cargo build --workspace --all-targets` (builds the eBPF program via aya-build);
//! 3. `cargo test --workspace`: unit tests, corpus tests (`../shared/captures`), the
//!    generated-capture test, and, as root, the network-namespace tests in `tests/`;
//! 4. as root, a 2-minute live soak (`cargo xtask soak`).
//!
//! As root this is the full suite, so nothing may skip: it sets `SNIFFER_TESTS_STRICT`,
//! under which a test that would skip (no corpus, no generator, no privilege) fails and
//! says why. `--allow-skips` turns that off.

use clap::Args;

use crate::util::{cargo, run_loud};

#[derive(Debug, Args)]
pub struct Options {
    /// Also check formatting and run clippy with warnings denied.
    #[arg(long)]
    pub lint: bool,
    /// Let tests skip (saying why) when the corpus or the generator in `../shared` is
    /// missing; by default, as root, a test that would skip fails.
    #[arg(long)]
    pub allow_skips: bool,
    /// Skip the 2-minute live soak that runs after the tests as root.
    #[arg(long)]
    pub no_soak: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let strict = crate::util::is_root() && !options.allow_skips;
    if !crate::util::is_root() {
        eprintln!(
            "xtask test: not root: the live-capture and namespace tests will skip \
             (run as root for the full suite)"
        );
    }
    if strict {
        let shared = crate::util::workspace_root().join("../shared");
        for need in ["captures/INDEX.tsv", "tools/http-capture-gen/generate.sh"] {
            anyhow::ensure!(
                shared.join(need).is_file(),
                "xtask test: {} is missing: the corpus and generator tests need `../shared` \
                 beside the repository (pass --allow-skips to run without them)",
                shared.join(need).display()
            );
        }
    }
    if options.lint {
        run_loud(cargo().args(["fmt", "--all", "--check"]))?;
        crate::layers::run(&crate::layers::Options::default())?;
        // The library builds without the program's command line (the `cli` feature).
        run_loud(
            cargo()
                .args([
                    "build",
                    "--package",
                    "sniffer",
                    "--lib",
                    "--no-default-features",
                ])
                .env("AYA_BUILD_SKIP", "1"),
        )?;
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
    let mut test = cargo();
    test.args(["test", "--workspace", "--no-fail-fast"])
        .args(&options.args);
    if strict {
        test.env(::tests::STRICT_ENV, "1");
    }
    run_loud(&mut test)?;
    if crate::util::is_root() && !options.no_soak && options.args.is_empty() {
        crate::soak::run(&crate::soak::Options {
            minutes: 2.0,
            sample_secs: 10,
        })?;
    }
    Ok(())
}
