//! What the user sees: flow tables, followed streams, JSON lines.

pub mod flows;
pub mod follow;
pub mod jsonl;
pub mod stats;

/// `n` and the noun, singular or plural: `1 file`, `2 files`, `0 files`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
