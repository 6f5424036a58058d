//! `cargo xtask build-ebpf`: build the kernel program and say where it is.
//!
//! A plain `cargo build` does the same through `sniffer/build.rs` (aya-build); this task
//! runs it in the foreground so compiler and verifier-relevant messages are readable.

use std::process::Command;

use clap::Args;

use crate::util::{run_loud, workspace_root};

#[derive(Debug, Args)]
pub struct Options {}

pub fn run(_: &Options) -> anyhow::Result<()> {
    let target_dir = workspace_root().join("target").join("ebpf");
    run_loud(
        Command::new("rustup")
            .current_dir(workspace_root())
            .args([
                "run",
                "nightly",
                "cargo",
                "build",
                "--package",
                "sniffer-ebpf",
            ])
            .args(["--bins", "--release", "--target", "bpfel-unknown-none"])
            .args(["-Z", "build-std=core"])
            .arg("--target-dir")
            .arg(&target_dir)
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                [
                    format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
                    "-Cdebuginfo=2".into(),
                    "-Clink-arg=--btf".into(),
                ]
                .join("\x1f"),
            ),
    )?;
    let object = target_dir.join("bpfel-unknown-none/release/sniffer-ebpf");
    let size = std::fs::metadata(&object).map(|m| m.len()).unwrap_or(0);
    eprintln!("xtask: eBPF object: {} ({size} bytes)", object.display());
    Ok(())
}
