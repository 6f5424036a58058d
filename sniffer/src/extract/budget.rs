//! The output directory's bytes: what is on disk, what a disk budget allows, which saved
//! file goes first when it is exceeded, and which bodies are the same (dedup).
//!
//! [`Disk`] is bookkeeping only: the writer asks it what to do and does the file-system
//! work itself. Its rules:
//!
//! - **Used bytes** are the bytes of the files being written plus those of the saved files,
//!   each stored body counted once however many names (hard links) it has.
//! - **Over budget**, the oldest saved file goes first (the order files were saved in;
//!   files found in the directory at start come before them, oldest modification first).
//!   A name whose body has other names frees nothing until the last one goes. A file
//!   being written is never evicted: when only files being written are left and the
//!   budget is still exceeded, the writer stops the file that grew.
//! - **Dedup**: a saved body whose sha256 equals a stored body's becomes another name of
//!   it (the writer hard-links it), and costs no bytes.
//!
//! # Invariant
//! `used == open + Σ size of each body in `bodies``, and every name in `order` refers to a
//! body in `bodies` whose `names` counts it.

use std::collections::{HashMap, VecDeque};

/// A stored body: its size and its names, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    size: u64,
    names: VecDeque<String>,
}

/// Where a body is kept: by sha256 when known (so copies share it), else by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Sha(String),
    Name(String),
}

/// A saved file the budget may evict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// File name in the output directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, when known (files found at start have none).
    pub sha256: Option<String>,
    key: Key,
}

/// What [`Disk::save`] decided for a finished file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Save {
    /// Keep it: a new body.
    Keep,
    /// Replace it by another name of this already-stored file (dedup).
    LinkTo(String),
}

/// The output directory's bookkeeping.
#[derive(Debug, Default)]
pub struct Disk {
    budget: Option<u64>,
    dedup: bool,
    /// Bytes of files being written.
    open: u64,
    used: u64,
    bodies: HashMap<Key, Body>,
    /// Saved files, oldest first.
    order: VecDeque<Saved>,
}

impl Disk {
    /// Bookkeeping for at most `budget` bytes (none: unbounded), deduplicating if `dedup`.
    pub fn new(budget: Option<u64>, dedup: bool) -> Self {
        Self {
            budget,
            dedup,
            ..Self::default()
        }
    }

    /// Bytes used now.
    pub const fn used(&self) -> u64 {
        self.used
    }

    /// The budget, if any.
    pub const fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// Used bytes exceed the budget.
    pub fn over(&self) -> bool {
        self.budget.is_some_and(|b| self.used > b)
    }

    /// A file found in the directory at start (oldest first); it can be evicted like any
    /// saved file, and is never deduplicated.
    pub fn found(&mut self, name: &str, size: u64) {
        self.store(name, size, None);
    }

    /// `n` more bytes were written to a file being written.
    pub fn grew(&mut self, n: u64) {
        self.open += n;
        self.used += n;
    }

    /// A file being written that held `n` bytes is finished (then [`Self::store`]d) or
    /// removed: its bytes no longer count as being written.
    pub fn dropped(&mut self, n: u64) {
        self.open -= n.min(self.open);
        self.used -= n.min(self.used);
    }

    /// A saved file of `size` bytes with this sha256 (None: no trustworthy hash, e.g.
    /// after a failed write; it is then never deduplicated). Decides whether it is kept
    /// or becomes another name of an earlier copy.
    pub fn store(&mut self, name: &str, size: u64, sha256: Option<&str>) -> Save {
        let key = match sha256 {
            Some(s) if self.dedup => Key::Sha(s.to_owned()),
            _ => Key::Name(name.to_owned()),
        };
        let saved = Saved {
            name: name.to_owned(),
            size,
            sha256: sha256.map(str::to_owned),
            key: key.clone(),
        };
        if let Some(body) = self.bodies.get_mut(&key) {
            let first = body.names.back().expect("a stored body has a name").clone();
            body.names.push_back(name.to_owned());
            self.order.push_back(saved);
            return Save::LinkTo(first);
        }
        self.used += size;
        self.bodies.insert(
            key,
            Body {
                size,
                names: VecDeque::from([name.to_owned()]),
            },
        );
        self.order.push_back(saved);
        Save::Keep
    }

    /// While over budget: the oldest saved file to delete now, and the bytes its deletion
    /// frees (0 when its body keeps other names). `None` when within budget, or when no
    /// saved file is left (only files being written).
    pub fn evict(&mut self) -> Option<(Saved, u64)> {
        if !self.over() {
            return None;
        }
        let s = self.order.pop_front()?;
        let body = self.bodies.get_mut(&s.key).expect("stored");
        // Saves and evictions both go in order, so a body's oldest name is this one.
        debug_assert_eq!(body.names.front(), Some(&s.name));
        body.names.pop_front();
        let freed = if body.names.is_empty() {
            let size = body.size;
            self.bodies.remove(&s.key);
            self.used -= size;
            size
        } else {
            0
        };
        Some((s, freed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file being written is saved: its bytes move from "being written" to "stored".
    fn finish(d: &mut Disk, name: &str, len: u64, sha: Option<&str>) -> Save {
        d.dropped(len);
        d.store(name, len, sha)
    }

    #[test]
    fn oldest_saved_goes_first_and_open_files_stay() {
        let mut d = Disk::new(Some(100), false);
        d.found("old", 30);
        d.grew(40);
        assert_eq!(finish(&mut d, "a", 40, Some("aa")), Save::Keep);
        assert_eq!(d.used(), 70);
        assert!(d.evict().is_none(), "within budget");
        d.grew(50);
        assert!(d.over());
        let (s, freed) = d.evict().unwrap();
        assert_eq!((s.name.as_str(), s.sha256, freed), ("old", None, 30));
        assert_eq!(d.used(), 90);
        assert!(d.evict().is_none());
        d.grew(20);
        assert_eq!(d.evict().unwrap().0.name, "a");
        assert_eq!(d.used(), 70);
        d.grew(40);
        assert!(d.over());
        assert!(d.evict().is_none(), "only the file being written is left");
        d.dropped(110);
        assert_eq!(d.used(), 0);
    }

    #[test]
    fn copies_cost_nothing_and_free_nothing_until_the_last_name() {
        let mut d = Disk::new(Some(15), true);
        d.grew(10);
        assert_eq!(finish(&mut d, "a", 10, Some("x")), Save::Keep);
        d.grew(10);
        assert_eq!(finish(&mut d, "b", 10, Some("x")), Save::LinkTo("a".into()));
        assert_eq!(d.used(), 10);
        d.grew(10);
        assert_eq!(finish(&mut d, "c", 10, Some("y")), Save::Keep);
        assert_eq!(d.used(), 20);
        let (first, freed) = d.evict().unwrap();
        assert_eq!((first.name.as_str(), freed), ("a", 0));
        let (second, freed) = d.evict().unwrap();
        assert_eq!((second.name.as_str(), freed), ("b", 10));
        assert_eq!(d.used(), 10);
        assert!(d.evict().is_none());
        // Without a hash there is no dedup.
        d.grew(10);
        assert_eq!(finish(&mut d, "d", 10, None), Save::Keep);
        assert_eq!(d.used(), 20);
    }

    /// Random runs against the obvious model: used bytes are the sum over distinct
    /// stored bodies plus the open bytes, and eviction order is save order.
    #[test]
    fn random_runs_match_the_model() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let budget = rng.random_range(0..200);
            let mut d = Disk::new(Some(budget), seed % 2 == 0);
            let mut names: Vec<(String, u64, String)> = Vec::new();
            let mut open = 0u64;
            for i in 0..60 {
                let n = rng.random_range(0..3) * 10;
                d.grew(n);
                open += n;
                if rng.random_bool(0.5) {
                    // Equal hashes mean equal bodies: here the hash is the size.
                    let sha = format!("{open}");
                    let name = format!("f{i}");
                    finish(&mut d, &name, open, Some(&sha));
                    names.push((name, open, sha));
                    open = 0;
                }
                while let Some((s, _)) = d.evict() {
                    assert_eq!(s.name, names.remove(0).0, "oldest first");
                }
                let mut distinct: HashMap<String, u64> = HashMap::new();
                for (name, size, sha) in &names {
                    let key = if seed % 2 == 0 {
                        sha.clone()
                    } else {
                        name.clone()
                    };
                    distinct.entry(key).or_insert(*size);
                }
                let stored: u64 = distinct.values().sum();
                assert_eq!(d.used(), stored + open, "seed {seed} step {i}");
                assert!(!d.over() || names.is_empty(), "seed {seed}");
            }
        }
    }
}
