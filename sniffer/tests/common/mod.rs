//! Helpers shared by the corpus tests: where the corpus is, and how to read its tables.
#![allow(
    dead_code,
    reason = "each test binary compiles this module and uses a different part of it"
)]

pub mod capture;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// The external corpus: `../shared/captures` beside the workspace, or `SNIFFER_CORPUS`.
/// `None` (with a message saying the test is skipped and why) when it is absent.
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SNIFFER_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures"),
        PathBuf::from,
    );
    if dir.join("INDEX.tsv").is_file() && dir.join("ref").is_dir() {
        Some(dir)
    } else {
        skip(&format!(
            "no corpus at {} (set SNIFFER_CORPUS to the captures directory)",
            dir.display()
        ));
        None
    }
}

/// Says why a test does not run; fails instead when `cargo xtask test` runs the full suite
/// (`SNIFFER_TESTS_STRICT`), so that a missing corpus or privilege cannot pass unnoticed.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("SNIFFER_TESTS_STRICT").is_none(),
        "this test cannot run: {why} (SNIFFER_TESTS_STRICT is set; \
         `cargo xtask test --allow-skips` lets it skip)"
    );
    eprintln!("SKIPPED: {why}");
}

/// Rows of a TSV file (first line = header) as header-name → value maps.
pub fn tsv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sniffer::extract::hex(&sha2::Sha256::digest(data))
}

pub mod flood;
