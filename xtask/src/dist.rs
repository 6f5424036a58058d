//! `cargo xtask dist`: what a package of sniffer ships beside the binary, generated from
//! the program's own command-line definition so it never drifts from `--help`:
//! shell completions for bash, zsh and fish, and a man page for `sniffer` and each of its
//! subcommands. Written into `target/dist/` (or `--out DIR`):
//!
//! ```text
//! completions/sniffer.bash  completions/_sniffer  completions/sniffer.fish
//! man/sniffer.1  man/sniffer-http.1  man/sniffer-flows.1  ...
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use crate::util::target_dir;

/// The program's command line, compiled here from the binary's own source (which names
/// nothing of the library for this reason: xtask must build before the library can).
#[path = "../../sniffer/src/app/cli.rs"]
mod cli;

#[derive(Debug, Args)]
pub struct Options {
    /// Where to write (default: target/dist).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| target_dir().join("dist"));
    let written = generate(&out)?;
    for f in &written {
        eprintln!("xtask dist: {}", f.display());
    }
    eprintln!(
        "xtask dist: install with e.g. `install -Dm644 {0}/completions/sniffer.bash \
         /usr/share/bash-completion/completions/sniffer` and `install -Dm644 -t \
         /usr/share/man/man1 {0}/man/*.1` (see the README)",
        out.display()
    );
    Ok(())
}

/// Write completions and man pages under `out`; the files written.
pub fn generate(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions).with_context(|| completions.display().to_string())?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cli::Cli::command();
        let path = clap_complete::generate_to(shell, &mut cmd, "sniffer", &completions)
            .with_context(|| format!("{shell} completions"))?;
        written.push(path);
    }
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| man.display().to_string())?;
    let cmd = cli::Cli::command();
    clap_mangen::generate_to(cmd, &man).context("man pages")?;
    for entry in std::fs::read_dir(&man)? {
        written.push(entry?.path());
    }
    written.sort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue13_completions_and_man_pages_cover_every_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        let bash = read("completions/sniffer.bash");
        let zsh = read("completions/_sniffer");
        let fish = read("completions/sniffer.fish");
        for sub in ["http", "capture", "flows", "follow"] {
            assert!(bash.contains(sub), "bash lacks {sub}");
            assert!(zsh.contains(sub), "zsh lacks {sub}");
            assert!(fish.contains(sub), "fish lacks {sub}");
            let page = read(&format!("man/sniffer-{sub}.1"));
            assert!(
                page.starts_with(".ie"),
                "{sub}: {}",
                &page[..40.min(page.len())]
            );
            assert!(page.contains(&format!("sniffer\\-{sub}")), "{sub}");
        }
        let main = read("man/sniffer.1");
        assert!(main.contains(".TH sniffer 1"), "{main}");
        assert!(
            main.contains("EXAMPLES") || main.contains("Examples"),
            "examples in the page"
        );
        for flag in ["\\-\\-extract", "\\-\\-max\\-disk", "\\-\\-no\\-save"] {
            assert!(main.contains(flag), "man page lacks {flag}");
        }
        assert!(files.len() >= 8, "{files:?}");
    }
}
