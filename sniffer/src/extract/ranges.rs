//! Parts of one resource (206 responses, single-range or `multipart/byteranges`, over any
//! connections) and the plan that merges them into the whole file.
//!
//! Parts are kept per resource: same URL, same validator (ETag, else Last-Modified) and
//! same complete length. Each part that arrives is placed at its Content-Range offset;
//! where it overlaps bytes an earlier part already gave, the earlier part's bytes are
//! kept (first wins) and the overlap is listed, so the writer can compare the two and
//! note a disagreement. Once the parts cover the resource from 0 to its length, the plan
//! says which bytes of which part files make the merged file.

use std::collections::HashMap;

/// A resource: URL, validator, complete length.
pub(super) type Resource = (String, String, u64);

/// A saved part: bytes `first..=last` of the resource, in the file `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) name: String,
}

/// Bytes `[at, at + take)` of the resource, copied from `name` starting at `skip`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Piece {
    pub(super) at: u64,
    pub(super) name: String,
    pub(super) skip: u64,
    pub(super) take: u64,
}

/// Bytes `[at, at + len)` of the resource that two parts both hold: `kept` (file, offset
/// in it) was saved first and is used; `other` should hold the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Overlap {
    pub(super) at: u64,
    pub(super) len: u64,
    pub(super) kept: (String, u64),
    pub(super) other: (String, u64),
}

/// How to build the whole file: its pieces in order (contiguous from 0 to the length),
/// the overlaps to compare, and the part files used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) pieces: Vec<Piece>,
    pub(super) overlaps: Vec<Overlap>,
    /// Overlaps beyond [`MAX_OVERLAPS`], not compared.
    pub(super) unchecked: u64,
    pub(super) parts: Vec<String>,
}

/// Overlaps compared per merged file.
pub(super) const MAX_OVERLAPS: usize = 64;

/// The parts of every resource not yet whole.
///
/// Invariant: for each resource, `pieces` are disjoint, sorted by offset, each within the
/// resource, and every byte of every part added is either in a piece or in an overlap
/// with one (first wins).
#[derive(Debug, Default)]
pub(super) struct Ranges {
    resources: HashMap<Resource, Layout>,
}

#[derive(Debug, Default)]
struct Layout {
    pieces: Vec<Piece>,
    overlaps: Vec<Overlap>,
    unchecked: u64,
    parts: Vec<String>,
}

impl Layout {
    /// Place `p` after the parts already placed: the bytes nobody gave yet become pieces
    /// of it; the others are overlaps with the piece that gave them.
    fn place(&mut self, p: &Part) {
        let end = p.last + 1;
        let mut cur = p.first;
        let mut new = Vec::new();
        for e in &self.pieces {
            let e_end = e.at + e.take;
            if e_end <= cur || e.at >= end {
                continue;
            }
            if e.at > cur {
                new.push(piece(p, cur, e.at));
            }
            let (from, to) = (cur.max(e.at), end.min(e_end));
            if self.overlaps.len() < MAX_OVERLAPS {
                self.overlaps.push(Overlap {
                    at: from,
                    len: to - from,
                    kept: (e.name.clone(), e.skip + (from - e.at)),
                    other: (p.name.clone(), from - p.first),
                });
            } else {
                self.unchecked += 1;
            }
            cur = to;
            if cur >= end {
                break;
            }
        }
        if cur < end {
            new.push(piece(p, cur, end));
        }
        if !new.is_empty() {
            self.parts.push(p.name.clone());
        }
        self.pieces.extend(new);
        self.pieces.sort_by_key(|e| e.at);
    }

    /// Whether the pieces cover `0..total`.
    fn covers(&self, total: u64) -> bool {
        let mut pos = 0;
        for e in &self.pieces {
            if e.at != pos {
                return false;
            }
            pos += e.take;
        }
        pos >= total
    }
}

/// The bytes `[from, to)` of the resource, from part `p`.
fn piece(p: &Part, from: u64, to: u64) -> Piece {
    Piece {
        at: from,
        name: p.name.clone(),
        skip: from - p.first,
        take: to - from,
    }
}

impl Ranges {
    /// Add a complete part of `resource` (its `last` is below the resource's length).
    /// Returns the plan once the parts cover it; the resource is then forgotten.
    pub(super) fn add(&mut self, resource: Resource, part: &Part) -> Option<Plan> {
        debug_assert!(part.first <= part.last && part.last < resource.2);
        let total = resource.2;
        let layout = self.resources.entry(resource.clone()).or_default();
        layout.place(part);
        if !layout.covers(total) {
            return None;
        }
        let l = self.resources.remove(&resource)?;
        Some(Plan {
            pieces: l.pieces,
            overlaps: l.overlaps,
            unchecked: l.unchecked,
            parts: l.parts,
        })
    }

    /// Resources with parts waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.resources.len()
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng as _, SeedableRng as _};

    use super::*;

    fn part(first: u64, last: u64, name: &str) -> Part {
        Part {
            first,
            last,
            name: name.into(),
        }
    }

    fn res(total: u64) -> Resource {
        ("http://h/f".into(), "\"e\"".into(), total)
    }

    #[test]
    fn two_halves_merge_in_order() {
        let mut r = Ranges::default();
        assert_eq!(r.add(res(100), &part(50, 99, "b")), None);
        let plan = r.add(res(100), &part(0, 49, "a")).unwrap();
        assert_eq!(
            plan.pieces,
            [
                Piece {
                    at: 0,
                    name: "a".into(),
                    skip: 0,
                    take: 50
                },
                Piece {
                    at: 50,
                    name: "b".into(),
                    skip: 0,
                    take: 50
                }
            ]
        );
        assert!(plan.overlaps.is_empty());
        assert_eq!(plan.parts, ["b", "a"]);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn overlaps_keep_the_first_and_are_listed() {
        let mut r = Ranges::default();
        assert_eq!(r.add(res(100), &part(0, 59, "a")), None);
        let plan = r.add(res(100), &part(40, 99, "b")).unwrap();
        assert_eq!(
            plan.pieces[1],
            Piece {
                at: 60,
                name: "b".into(),
                skip: 20,
                take: 40
            }
        );
        assert_eq!(
            plan.overlaps,
            [Overlap {
                at: 40,
                len: 20,
                kept: ("a".into(), 40),
                other: ("b".into(), 0)
            }]
        );
        // A part wholly inside what is known adds only an overlap.
        let mut r = Ranges::default();
        r.add(res(10), &part(0, 4, "a"));
        assert_eq!(r.add(res(10), &part(1, 3, "inner")), None);
        let plan = r.add(res(10), &part(5, 9, "b")).unwrap();
        assert_eq!(plan.parts, ["a", "b"]);
        assert_eq!(plan.overlaps.len(), 1);
    }

    #[test]
    fn resources_are_kept_apart() {
        let mut r = Ranges::default();
        assert_eq!(r.add(res(10), &part(0, 4, "a")), None);
        let other = ("http://h/f".into(), "\"other\"".into(), 10);
        assert_eq!(r.add(other, &part(5, 9, "b")), None);
        assert_eq!(r.len(), 2);
    }

    /// Random parts against a model: the merged bytes (each byte from the first part that
    /// held it) equal the model's, and overlaps cover exactly the bytes held twice.
    #[test]
    fn random_parts_agree_with_a_byte_model() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        for _ in 0..500 {
            let total: u64 = rng.random_range(1..60);
            let mut r = Ranges::default();
            let mut first_owner: Vec<Option<(usize, u64)>> = vec![None; total as usize];
            let mut twice = 0u64;
            let mut names = Vec::new();
            for i in 0..40 {
                let a = rng.random_range(0..total);
                let b = rng.random_range(a..total);
                let name = format!("p{i}");
                names.push(name.clone());
                for (k, owner) in first_owner
                    .iter_mut()
                    .enumerate()
                    .take(b as usize + 1)
                    .skip(a as usize)
                {
                    if owner.is_none() {
                        *owner = Some((i, k as u64 - a));
                    } else {
                        twice += 1;
                    }
                }
                if let Some(plan) = r.add(res(total), &part(a, b, &name)) {
                    let mut got = Vec::new();
                    for p in &plan.pieces {
                        let i: usize = p.name[1..].parse().unwrap();
                        for k in 0..p.take {
                            got.push(Some((i, p.skip + k)));
                        }
                    }
                    assert_eq!(got, first_owner);
                    let overlapped: u64 = plan.overlaps.iter().map(|o| o.len).sum();
                    if plan.unchecked == 0 {
                        assert_eq!(overlapped, twice);
                    }
                    break;
                }
            }
        }
    }
}
