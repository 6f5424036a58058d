//! `cargo xtask layers`: imports in the library run one way, down the layers.
//!
//! The layers are the modules `sniffer/src/lib.rs` declares, in the order it declares
//! them, lowest first. Every `crate::…` path in a library file (a `use`, or a path written
//! inline) names the layer it reaches; a file may reach its own layer and the ones declared
//! before it, never one declared after it. Files may also not import each other in a loop
//! (parent and child modules excepted: a child always sees its parent).
//!
//! Not checked: comments and doc links (they import nothing), unit tests (`tests.rs` files
//! and a trailing `#[cfg(test)] mod tests { … }`: a test may reach anywhere), and the
//! binary (`main.rs` and `app/`), which stands on top of the whole library.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::util::workspace_root;

#[derive(Debug, Args, Default)]
pub struct Options {
    /// Print every file's layer and what it imports.
    #[arg(long)]
    pub verbose: bool,
}

/// One library file: its module path (`flow::key`), its layer (`flow`) and source.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub module: String,
    pub text: String,
}

/// What went wrong with the imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// `module` (in layer `from`) imports `target` (in the higher layer `to`).
    Upward {
        module: String,
        from: String,
        target: String,
        to: String,
    },
    /// These modules import each other, directly or through others.
    Loop(Vec<String>),
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Upward {
                module,
                from,
                target,
                to,
            } => write!(
                f,
                "{module} (layer {from}) imports crate::{target}, from layer {to}, \
                 which lib.rs declares after {from}: move the type down, or the code up"
            ),
            Self::Loop(mods) => write!(f, "import loop: {}", mods.join(" -> ")),
        }
    }
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let src = workspace_root().join("sniffer/src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).context("reading sniffer/src/lib.rs")?;
    let layers = declared_modules(&lib);
    let files = library_files(&src)?;
    let (edges, violations) = check(&layers, &files);
    if options.verbose {
        for (module, targets) in &edges {
            let t: Vec<_> = targets.iter().map(String::as_str).collect();
            eprintln!("  {module:<24} -> {}", t.join(", "));
        }
    }
    if violations.is_empty() {
        eprintln!(
            "xtask layers: {} files, layers {}: every import runs down, no loops",
            files.len(),
            layers.join(" < ")
        );
        return Ok(());
    }
    for v in &violations {
        eprintln!("xtask layers: {v}");
    }
    bail!(
        "{} import(s) against the layers of lib.rs",
        violations.len()
    )
}

/// The modules a crate root declares, in order (`pub mod x;`, `mod x;`).
pub fn declared_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            let name = rest.strip_suffix(';')?.trim();
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_owned())
        })
        .collect()
}

/// Every library file under `src`, as module path and text (the binary's files and unit
/// test files left out).
fn library_files(src: &Path) -> anyhow::Result<Vec<SourceFile>> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(src) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            let Some(stem) = rel.strip_suffix(".rs") else {
                continue;
            };
            if stem == "main" || stem == "lib" || stem.starts_with("app/") {
                continue;
            }
            let module = stem.strip_suffix("/mod").unwrap_or(stem).replace('/', "::");
            if module.ends_with("tests") {
                continue;
            }
            let text = std::fs::read_to_string(&path).with_context(|| rel.clone())?;
            out.push(SourceFile { module, text });
        }
    }
    out.sort_by(|a, b| a.module.cmp(&b.module));
    Ok(out)
}

/// The code of a file without comments and without a trailing unit-test module.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `crate::…` paths in `code`, each as its module segments (`["flow", "FlowTable"]`).
/// Grouped imports (`crate::{a::B, c::{D, E}}`) yield one path per leaf.
pub fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let (paths, used) = parse_tree(rest);
        out.extend(paths);
        rest = &rest[used..];
    }
    out
}

/// Parse a use tree at the start of `s`: `a::b::C`, `a::{B, c::D}`, `{…}`. Returns the
/// leaf paths and the bytes read.
fn parse_tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut prefix = Vec::new();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            let mut leaves = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    i += 1;
                    break;
                }
                let (sub, used) = parse_tree(&s[i..]);
                if used == 0 {
                    i += 1;
                    continue;
                }
                i += used;
                for p in sub {
                    let mut full = prefix.clone();
                    full.extend(p);
                    leaves.push(full);
                }
            }
            return (leaves, i.min(bytes.len()));
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if start == i {
            return (
                if prefix.is_empty() {
                    vec![]
                } else {
                    vec![prefix]
                },
                i,
            );
        }
        prefix.push(s[start..i].to_owned());
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The longest module among `modules` that `path` starts with.
fn target_module(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|k| path[..k].join("::"))
        .find(|m| modules.contains(m))
}

fn layer_of(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// Check `files` against `layers`: the import edges between files, and the violations.
pub fn check(
    layers: &[String],
    files: &[SourceFile],
) -> (BTreeMap<String, BTreeSet<String>>, Vec<Violation>) {
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for file in files {
        let from = layer_of(&file.module);
        let from_rank = rank.get(from).copied().unwrap_or(usize::MAX);
        for path in crate_paths(&code_only(&file.text)) {
            let Some(to) = path.first() else { continue };
            let Some(&to_rank) = rank.get(to.as_str()) else {
                continue;
            };
            if to_rank > from_rank {
                let v = Violation::Upward {
                    module: file.module.clone(),
                    from: from.to_owned(),
                    target: path.join("::"),
                    to: to.clone(),
                };
                if !violations.contains(&v) {
                    violations.push(v);
                }
            }
            if let Some(t) = target_module(&path, &modules) {
                let related = t == file.module
                    || file.module.starts_with(&format!("{t}::"))
                    || t.starts_with(&format!("{}::", file.module));
                if !related {
                    edges.entry(file.module.clone()).or_default().insert(t);
                }
            }
        }
    }
    violations.extend(loops(&edges).into_iter().map(Violation::Loop));
    (edges, violations)
}

/// Strongly connected components of more than one module (Tarjan).
fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(st: &mut State<'a>, v: &'a str) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on.insert(v);
        if let Some(ws) = st.edges.get(v) {
            for w in ws {
                let w = w.as_str();
                if !st.index.contains_key(w) {
                    visit(st, w);
                    let lw = st.low[w];
                    let lv = st.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if st.on.contains(w) {
                    let iw = st.index[w];
                    let lv = st.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on.remove(w);
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                st.found.push(comp);
            }
        }
    }
    let mut st = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !st.index.contains_key(v.as_str()) {
            visit(&mut st, v);
        }
    }
    st.found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(module: &str, text: &str) -> SourceFile {
        SourceFile {
            module: module.into(),
            text: text.into(),
        }
    }

    fn layers() -> Vec<String> {
        declared_modules("// ground\npub mod wire;\n\npub mod capture;\nmod flow;\npub mod http;\n")
    }

    #[test]
    fn lib_order_is_the_layer_order() {
        assert_eq!(layers(), ["wire", "capture", "flow", "http"]);
    }

    #[test]
    fn grouped_and_inline_paths_are_all_found() {
        let paths = crate_paths(
            "use crate::{capture::{Frame, live::X}, wire::Timestamp};\n\
             fn f(x: &crate::http::Tx) {}\n\
             macro_rules! m { () => { $crate::ignored } }",
        );
        let heads: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
        assert_eq!(
            heads,
            [
                "capture::Frame",
                "capture::live::X",
                "wire::Timestamp",
                "http::Tx",
            ]
        );
    }

    #[test]
    fn an_upward_import_is_named_and_a_downward_one_is_not() {
        let files = [
            file("wire", "pub struct T;"),
            file("capture", "use crate::wire::T;\nuse crate::http::Analyzer;"),
            file("http", "use crate::{capture::Frame, wire::T};"),
        ];
        let (_, v) = check(&layers(), &files);
        assert_eq!(
            v,
            [
                Violation::Upward {
                    module: "capture".into(),
                    from: "capture".into(),
                    target: "http::Analyzer".into(),
                    to: "http".into(),
                },
                Violation::Loop(vec!["capture".into(), "http".into()]),
            ]
        );
    }

    #[test]
    fn comments_tests_and_children_do_not_count() {
        let files = [
            file("capture", "//! see [`crate::http`]\nuse crate::wire::T;"),
            file(
                "wire",
                "pub struct T;\n#[cfg(test)]\nmod tests {\n    use crate::http::X;\n}\n",
            ),
            file("http", "use crate::http::parser::P;"),
            file("http::parser", "use crate::http::Tx;"),
        ];
        let (edges, v) = check(&layers(), &files);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(edges.get("capture").map(BTreeSet::len), Some(1));
    }

    #[test]
    fn the_library_as_it_stands_passes() {
        let src = workspace_root().join("sniffer/src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let (_, v) = check(&declared_modules(&lib), &library_files(&src).unwrap());
        assert!(v.is_empty(), "{v:?}");
    }
}
