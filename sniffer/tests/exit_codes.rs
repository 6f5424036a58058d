//! Issue 13: one table of exit codes, in the README, held by every subcommand. Each case
//! runs the real binary; the README's table must list every code the cases produce.

mod common;

use std::{path::Path, process::Command};

fn code(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn issue13_every_subcommand_keeps_the_exit_code_table() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let good = corpus.join("zeek__http__get-gzip.pcap");
    let good = good.to_str().unwrap();
    let damaged = tmp.path().join("damaged.pcap");
    let mut bytes = std::fs::read(good).unwrap();
    // Cut inside a record before the session ends (follow stops reading once it has).
    bytes.truncate(bytes.len() * 2 / 3 - 3);
    std::fs::write(&damaged, &bytes).unwrap();
    let damaged = damaged.to_str().unwrap();
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, b"A\xdfK\xfa not a capture").unwrap();
    let text = text.to_str().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let cap = tmp.path().join("c.pcap");
    let cap = cap.to_str().unwrap();

    // (subcommand and its own arguments, as a prefix; for `follow`, a stream that exists)
    let commands: [&[&str]; 5] = [
        &["--out", out],
        &["http", "--out", out],
        &["flows"],
        &["follow", "0"],
        &["capture", "-w", cap],
    ];
    let mut seen = std::collections::BTreeSet::new();
    for cmd in commands {
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = cmd.to_vec();
            v.extend_from_slice(extra);
            code(&v)
        };
        let cases: [(&[&str], i32, &str); 5] = [
            (&["-r", good], 0, ""),
            // A directory cannot be read as a capture: a runtime failure.
            (&["-r", dir], 1, "is a directory"),
            (&["-r", good, "--no-such-option"], 2, "unexpected argument"),
            (&["-r", text], 2, "it starts with 41 df 4b fa"),
            (&["-r", damaged], 3, "damaged at byte"),
        ];
        for (extra, want, says) in cases {
            let (got, err) = with(extra);
            assert_eq!(got, Some(want), "{cmd:?} {extra:?}: {err}");
            assert!(err.contains(says), "{cmd:?} {extra:?}: {err}");
            for line in err.lines() {
                assert!(
                    line.starts_with("sniffer: ")
                        || line.starts_with("error: ")
                        || line.starts_with("Usage: ")
                        || line.starts_with("For more information")
                        || line.trim().is_empty()
                        || line.starts_with("  tip: "),
                    "{cmd:?} {extra:?}: a stderr line without `sniffer:`: {line:?}"
                );
            }
            seen.insert(want);
        }
    }
    // Usage errors particular to one command.
    let (got, err) = code(&["follow", "-r", good, "99"]);
    assert_eq!(got, Some(2), "{err}");
    assert!(err.contains("no stream 99 in the input"), "{err}");
    let (got, err) = code(&["-r", good, "--out", good]);
    assert_eq!(got, Some(2), "{err}");
    assert!(err.contains("exists and is not a directory"), "{err}");
    let (got, err) = code(&["flows", "-r", good, "--max-sessions", "0"]);
    assert_eq!(got, Some(2), "{err}");

    // The README's table lists every code seen, and only those.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let table = readme
        .split_once("### Exit codes")
        .expect("an exit-code section")
        .1;
    let listed: std::collections::BTreeSet<i32> = table
        .lines()
        .skip_while(|l| !l.starts_with("| code"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_start_matches('|')
                .split('|')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(listed, seen, "README exit-code table");
}
