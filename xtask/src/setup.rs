//! `cargo xtask setup`: install whatever this machine lacks to build and test sniffer.
//!
//! Idempotent: each step checks first and prints what it does. Steps:
//! 1. the nightly toolchain's `rust-src` (the eBPF build uses `-Z build-std=core`);
//! 2. `bpf-linker`, built against the LLVM shipped inside the nightly toolchain: a folder
//!    holding `lib/libLLVM.so` → the toolchain's `libLLVM.so.<major>.<minor>-rust-*` is
//!    passed as `LLVM_PREFIX` to `cargo install bpf-linker --features llvm-<major>`;
//! 3. the Debian packages the tests and benchmarks use (tshark, nginx, curl, tcpdump, …).

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::util::{run_loud, succeeds, workspace_root};

/// The nightly toolchain the eBPF program is built with (aya-build's default).
const NIGHTLY: &str = "nightly";
/// bpf-linker release known to work with the nightly here.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages: (command to look for, package, fallback package).
const PACKAGES: &[(&str, &str, Option<&str>)] = &[
    ("tshark", "tshark", None),
    ("nginx", "nginx-light", Some("nginx")),
    ("curl", "curl", None),
    ("tcpdump", "tcpdump", None),
    ("nft", "nftables", None),
    ("ethtool", "ethtool", None),
    ("ip", "iproute2", None),
    ("tcpflow", "tcpflow", None),
    ("python3", "python3", None),
    // setcap: the tests run a copy of the binary as `nobody` with file capabilities.
    ("setcap", "libcap2-bin", None),
    // The event tests and `bench --events` run a private Redis; the TLS test makes a CA.
    ("redis-server", "redis-server", None),
    ("openssl", "openssl", None),
    // The benchmarks read each tool's max RSS from GNU time.
    ("/usr/bin/time", "time", None),
];

#[derive(Debug, Args, Default)]
pub struct Options {
    /// Skip the Debian packages (toolchain parts only).
    #[arg(long)]
    pub no_apt: bool,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    rust_src()?;
    bpf_linker()?;
    if !options.no_apt {
        debian_packages()?;
    }
    eprintln!("xtask setup: everything is in place");
    Ok(())
}

fn rustup() -> Command {
    Command::new("rustup")
}

fn rust_src() -> anyhow::Result<()> {
    if !succeeds(rustup().args(["run", NIGHTLY, "rustc", "--version"])) {
        bail!(
            "the `{NIGHTLY}` toolchain is missing: the eBPF program needs it \
             (install it with `rustup toolchain install {NIGHTLY}`)"
        );
    }
    let installed = rustup()
        .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
        .output()
        .context("rustup component list")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        eprintln!("xtask setup: rust-src for {NIGHTLY}: present");
        return Ok(());
    }
    eprintln!("xtask setup: rust-src for {NIGHTLY}: installing");
    run_loud(rustup().args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

fn bpf_linker() -> anyhow::Result<()> {
    // bpf-linker loads the toolchain's libLLVM, which `rustup run` puts on the load path.
    if succeeds(rustup().args(["run", NIGHTLY, "bpf-linker", "--version"])) {
        eprintln!("xtask setup: bpf-linker: present");
        return Ok(());
    }
    let sysroot = rustup()
        .args(["run", NIGHTLY, "rustc", "--print", "sysroot"])
        .output()
        .context("rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout)?.trim());
    let lib_dir = sysroot.join("lib");
    let llvm = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so.") && n.contains("-rust-"))
        .with_context(|| {
            format!(
                "no libLLVM.so.*-rust-* in {}: cannot build bpf-linker against the toolchain's LLVM",
                lib_dir.display()
            )
        })?;
    // libLLVM.so.22.1-rust-1.97.0-nightly → 22
    let major = llvm
        .trim_start_matches("libLLVM.so.")
        .split(['.', '-'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let prefix = workspace_root().join("target").join("llvm-prefix");
    let link = prefix.join("lib").join("libLLVM.so");
    std::fs::create_dir_all(prefix.join("lib"))?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(lib_dir.join(&llvm), &link)
        .with_context(|| format!("symlink {}", link.display()))?;
    eprintln!(
        "xtask setup: bpf-linker: building {BPF_LINKER_VERSION} against {llvm} (LLVM {major}); \
         this takes a few minutes"
    );
    run_loud(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ]),
    )?;
    if !succeeds(rustup().args(["run", NIGHTLY, "bpf-linker", "--version"])) {
        bail!("bpf-linker was installed but does not run under `rustup run {NIGHTLY}`");
    }
    Ok(())
}

fn debian_packages() -> anyhow::Result<()> {
    let missing: Vec<_> = PACKAGES
        .iter()
        .filter(|(cmd, ..)| {
            !succeeds(Command::new("sh").args(["-c", &format!("command -v {cmd}")]))
        })
        .collect();
    if missing.is_empty() {
        eprintln!("xtask setup: Debian packages: present");
        return Ok(());
    }
    if !crate::util::is_root() {
        let names: Vec<_> = missing.iter().map(|(_, p, _)| *p).collect();
        bail!(
            "missing Debian packages {names:?}: run `cargo xtask setup` as root, or `apt-get install {}`",
            names.join(" ")
        );
    }
    eprintln!("xtask setup: Debian packages: installing what is missing");
    run_loud(Command::new("apt-get").args(["update", "-q"]))?;
    for (_, package, fallback) in missing {
        let install = |p: &str| {
            run_loud(
                Command::new("apt-get")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(["install", "-y", "-q", "--no-install-recommends", p]),
            )
        };
        if let Err(e) = install(package) {
            match fallback {
                Some(f) => {
                    install(f).with_context(|| format!("{package} failed ({e:#}), then {f}"))?
                }
                None => return Err(e),
            }
        }
    }
    Ok(())
}
