//! Issue 13: one JSON vocabulary. Every record of every JSON output (`--json`,
//! `index.jsonl`, `flows --json`, `follow --format json`, and the events of `--events`) is
//! validated against its schema in `docs/schema/`, which allows no field it does not list;
//! every field a schema lists is documented in `docs/json.md`.

mod common;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use common::corpus;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn schemas() -> BTreeMap<String, serde_json::Value> {
    std::fs::read_dir(docs().join("schema"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let schema: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = schema["properties"]["type"]["const"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no type const", path.display()))
                .to_owned();
            (kind, schema)
        })
        .collect()
}

/// Validate each line of `output` against the schema its `type` names; returns the
/// number of records per type.
fn validate(what: &str, output: &str) -> BTreeMap<String, usize> {
    let schemas = schemas();
    let validators: BTreeMap<&String, jsonschema::Validator> = schemas
        .iter()
        .map(|(k, s)| (k, jsonschema::validator_for(s).unwrap()))
        .collect();
    let mut seen = BTreeMap::new();
    for (i, line) in output.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{what} line {}: not JSON ({e}): {line}", i + 1));
        assert!(
            line.starts_with(r#"{"v":1,"type":""#),
            "{what} line {}: v and type come first: {line}",
            i + 1
        );
        let kind = v["type"].as_str().expect("type is a string").to_owned();
        let validator = validators
            .get(&kind)
            .unwrap_or_else(|| panic!("{what} line {}: no schema for type {kind}", i + 1));
        let errors: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} line {}: {errors:?}\n{line}",
            i + 1
        );
        *seen.entry(kind).or_default() += 1;
    }
    seen
}

fn sniffer(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "sniffer {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn issue13_every_json_output_matches_its_schema() {
    let Some(corpus) = corpus() else { return };
    // A gzip body, 206 parts merged into a whole file, and a capture with gaps.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for name in [
        "zeek__http__get-gzip.pcap",
        "zeek__http__206_example_b.pcap",
        "suricata-verify__http-gap-simple__input.pcap",
        "zeek__http__bro.org.pcap",
    ] {
        let capture = corpus.join(name);
        let capture = capture.to_str().unwrap();
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("o");
        let dir = dir.to_str().unwrap();
        let mut add = |seen: BTreeMap<String, usize>| {
            for (k, n) in seen {
                *counts.entry(k).or_default() += n;
            }
        };
        let events = out.path().join("events.jsonl");
        let events_url = format!("file://{}", events.display());
        #[rustfmt::skip]
        add(validate(
            &format!("{name} --json"),
            &sniffer(&[
                "-r", capture, "--json", "--extract-all", "--out", dir,
                "--events", &events_url, "--sensor", "schema-test",
            ]),
        ));
        let sent = std::fs::read_to_string(&events).unwrap();
        for line in sent.lines() {
            assert!(
                line.contains(r#","sensor":"schema-test","#),
                "an event without its sensor: {line}"
            );
        }
        add(validate(&format!("{name} --events"), &sent));
        add(validate(
            &format!("{name} index.jsonl"),
            &std::fs::read_to_string(Path::new(dir).join("index.jsonl")).unwrap(),
        ));
        let flows = sniffer(&["flows", "-r", capture, "--json"]);
        let sessions = flows.lines().count();
        add(validate(&format!("{name} flows"), &flows));
        for stream in (0..sessions.min(3)).map(|s| s.to_string()) {
            let stream = stream.as_str();
            add(validate(
                &format!("{name} follow {stream}"),
                &sniffer(&["follow", "-r", capture, stream, "--format", "json"]),
            ));
        }
    }
    // A disk budget smaller than the bodies: the oldest files are evicted, each a line.
    let capture = corpus.join("zeek__http__206_example_b.pcap");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("o");
    sniffer(&[
        "-r",
        capture.to_str().unwrap(),
        "--extract-all",
        "--max-disk",
        "1M",
        "--out",
        dir.to_str().unwrap(),
    ]);
    for (k, n) in validate(
        "--max-disk index.jsonl",
        &std::fs::read_to_string(dir.join("index.jsonl")).unwrap(),
    ) {
        *counts.entry(k).or_default() += n;
    }
    for kind in [
        "transaction",
        "file",
        "flow",
        "data",
        "gap",
        "evicted",
        "stats",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} record was produced: {counts:?}"
        );
    }
}

#[test]
fn issue13_every_schema_field_is_documented() {
    let doc = std::fs::read_to_string(docs().join("json.md")).unwrap();
    for (kind, schema) in schemas() {
        assert!(doc.contains(&format!("## `{kind}`")) || doc.contains(&format!("`{kind}`")));
        for field in schema["properties"].as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("`{field}`")),
                "docs/json.md does not document {kind}.{field}"
            );
        }
    }
}

#[test]
fn issue13_a_field_the_schema_does_not_list_is_refused() {
    let line = r#"{"v":1,"type":"gap","ts":1.5,"stream":0,"dir":"resp","orig_ip":"10.0.0.1","orig_port":1,"resp_ip":"10.0.0.2","resp_port":80,"offset":0,"size":1,"extra":true}"#;
    let result = std::panic::catch_unwind(|| validate("literal", line));
    assert!(result.is_err(), "an unlisted field passed validation");
    let ok = line.replace(r#","extra":true"#, "");
    assert_eq!(validate("literal", &ok).get("gap"), Some(&1));
}

#[test]
fn issue13_every_example_in_the_docs_matches_its_schema() {
    let doc = std::fs::read_to_string(docs().join("json.md")).unwrap();
    let mut examples = String::new();
    let mut in_json = false;
    for line in doc.lines() {
        match line {
            "```json" => in_json = true,
            "```" => in_json = false,
            l if in_json && l.starts_with('{') => {
                examples.push_str(l);
                examples.push('\n');
            }
            _ => {}
        }
    }
    let seen = validate("docs/json.md", &examples);
    for kind in schemas().keys() {
        assert!(
            seen.contains_key(kind),
            "docs/json.md shows no {kind} record"
        );
    }
}
