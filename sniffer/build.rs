//! Builds the kernel program (`sniffer-ebpf`'s bin) for the bpf target and leaves it in
//! `OUT_DIR/sniffer-ebpf`, where `capture::live` embeds it. This is what aya-template does.
//!
//! It needs the nightly toolchain with `rust-src` and `bpf-linker`; `cargo xtask setup`
//! installs them. With `AYA_BUILD_SKIP=1` the eBPF build is skipped (for fuzzing and
//! quick unit-test builds) and an empty object is embedded; live capture then says so.

use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("..").join("sniffer-ebpf");
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    let out = PathBuf::from(env::var("OUT_DIR")?).join("sniffer-ebpf");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        if !out.exists() {
            fs::write(&out, [])?;
        }
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        return Ok(());
    }
    let package = aya_build::Package {
        name: "sniffer-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default()).map_err(|e| {
        anyhow::anyhow!(
            "building the eBPF program failed: {e:#}\n\
             hint: run `cargo xtask setup` (installs nightly rust-src and bpf-linker), \
             or set AYA_BUILD_SKIP=1 to build without live capture"
        )
    })
}
