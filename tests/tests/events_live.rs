//! Issue 15, live: sensors in network namespaces report to Redis while nginx serves and
//! curl fetches.
//!
//! - Redis is killed in the middle of a live run and started again: capture and saving go
//!   on (every file saved byte-exact), the records that did not fit the queue meanwhile are
//!   counted as dropped, and delivery resumes.
//! - Two sensors on two hosts, each seeing one side of the same connections, report to one
//!   Redis in a third namespace: a consumer of the stream sees both sensor names, and the
//!   same Community ID for the two sides of each connection.
//!
//! Needs root; skipped with a message otherwise.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead as _, BufReader, Read as _},
    net::{IpAddr, Ipv4Addr},
    process::{ChildStderr, Stdio},
    thread,
    time::{Duration, Instant},
};

use tests::{
    Child, HttpServer, Netns, VethPair,
    redis::{RedisServer, require_redis},
    require_root, sniffer_bin, write_pattern_file,
};

const BODY_LEN: usize = 200_000 + 17;

/// `sniffer` live on `iface` inside `ns`, saving everything into `out`, with `args`;
/// returns once it captures, with its stderr (the rest of it comes at exit).
fn start_sensor(
    ns: &Netns,
    iface: &str,
    out: &str,
    args: &[&str],
) -> (Child, BufReader<ChildStderr>) {
    let bin = sniffer_bin();
    let mut all = vec![
        bin.to_str().unwrap(),
        "-i",
        iface,
        "--extract-all",
        "--out",
        out,
        // The output directories are the test's, private to root.
        "-Z",
        "root",
    ];
    all.extend(args);
    let mut cmd = ns.command(&all);
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn,sniffer::capture::live=debug");
    let mut child = Child::spawn(cmd).unwrap();
    let mut stderr = BufReader::new(child.inner().stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let start = said.len();
        assert!(
            stderr.read_line(&mut said).unwrap() > 0,
            "the sniffer exited before capturing:\n{said}"
        );
        if said[start..].contains("capturing on") {
            return (child, stderr);
        }
    }
}

/// Stop a sensor with SIGINT; its whole stderr.
fn stop_sensor(mut child: Child, mut stderr: BufReader<ChildStderr>) -> String {
    child.signal(libc::SIGINT).unwrap();
    let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
    let mut said = String::new();
    stderr.read_to_string(&mut said).unwrap();
    assert!(status.success(), "{status}:\n{said}");
    said
}

fn fetch(ns: &Netns, host: IpAddr, name: &str) {
    let host = match host {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let url = format!("http://{host}/{name}");
    #[rustfmt::skip]
    ns.run(&["curl", "-sS", "--http1.1", "--max-time", "20", "-o", "/dev/null", &url])
        .unwrap();
}

/// The `event` fields of the stream at `key`, read in the server's namespace.
fn stream(redis: &RedisServer, key: &str) -> Vec<serde_json::Value> {
    let out = redis.cli(&["--raw", "XRANGE", key, "-", "+"]).unwrap();
    // An empty reply (no stream yet) is one empty line.
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    lines
        .chunks(3)
        .map(|e| serde_json::from_str(e[2]).unwrap())
        .collect()
}

/// Waits until `done` holds for the stream, or fails after 30 s.
fn wait_for(
    redis: &RedisServer,
    key: &str,
    what: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = stream(redis, key);
        if done(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not in the stream: {got:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// URL paths of the transactions in `events`.
fn paths(events: &[serde_json::Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["type"] == "transaction")
        .filter_map(|e| e["url"].as_str())
        .map(|u| u.rsplit('/').next().unwrap().to_owned())
        .collect()
}

#[test]
fn issue15_redis_killed_and_restarted_mid_capture() {
    if !(require_root("issue15_redis_killed") && require_redis("issue15_redis_killed")) {
        return;
    }
    let server_ns = Netns::new("rs").unwrap();
    let client = Netns::new("rc").unwrap();
    let veth = VethPair::new(&server_ns, &client).unwrap();
    let www = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .flat_map(|phase| {
            (0..if *phase == "b" { 12 } else { 3 }).map(move |i| format!("{phase}{i}.bin"))
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        write_pattern_file(&www.path().join(name), BODY_LEN + i).unwrap();
    }
    let _nginx = HttpServer::start(&server_ns, www.path(), &[80]).unwrap();
    // Redis beside the sensor, on the client's loopback.
    let mut redis = RedisServer::start_in(Some(&client), Ipv4Addr::LOCALHOST.into(), &[]).unwrap();
    let url = format!("redis://127.0.0.1:{}/live", redis.port);
    let out = tempfile::tempdir().unwrap();
    let (sensor, stderr) = start_sensor(
        &client,
        &veth.b_if,
        out.path().to_str().unwrap(),
        // A small queue, so the outage overflows it; stats only at the end.
        &[
            "--events",
            &url,
            "--events-queue",
            "8",
            "--events-stats-interval",
            "0",
        ],
    );
    let host = veth.a_addr(false);
    let phase = |p: &str| {
        names
            .iter()
            .filter(|n| n.starts_with(p))
            .cloned()
            .collect::<Vec<_>>()
    };
    for name in phase("a") {
        fetch(&client, host, &name);
    }
    wait_for(&redis, "live", "phase a", |e| {
        phase("a").iter().all(|n| paths(e).contains(n))
    });
    redis.kill();
    for name in phase("b") {
        fetch(&client, host, &name);
    }
    redis.restart().unwrap();
    // The sensor reconnects (after up to 5 s of backoff) and delivers what it held: Redis
    // was down for all of phase b, so any phase-b record in the stream came from the
    // sensor's queue after the restart. (Comparing the stream's length before and after
    // raced with a quick reconnect that had already delivered everything.)
    wait_for(&redis, "live", "the records held during the outage", |e| {
        let got = paths(e);
        phase("b").iter().any(|n| got.contains(n))
    });
    for name in phase("c") {
        fetch(&client, host, &name);
    }
    // Delivery resumes: what was fetched after the restart arrives.
    wait_for(&redis, "live", "phase c", |e| {
        phase("c").iter().all(|n| paths(e).contains(n))
    });
    thread::sleep(Duration::from_millis(300));
    let said = stop_sensor(sensor, stderr);

    // Capture and saving went on: every file saved, byte for byte.
    let index = std::fs::read_to_string(out.path().join("index.jsonl")).unwrap();
    let saved: BTreeMap<String, String> = index
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(e["complete"], true, "{l}");
            let url = e["url"].as_str().unwrap();
            (
                url.rsplit('/').next().unwrap().to_owned(),
                e["file"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(saved.len(), names.len(), "{index}");
    for name in &names {
        assert_eq!(
            std::fs::read(out.path().join(&saved[name])).unwrap(),
            std::fs::read(www.path().join(name)).unwrap(),
            "{name}"
        );
    }
    // Redis away was a warning, once per outage, and its return was said.
    assert_eq!(said.matches("unreachable (").count(), 1, "{said}");
    assert_eq!(said.matches("reachable again").count(), 1, "{said}");
    // Every record is counted: a transaction, a file and a flow per fetch, and the last
    // stats record; some were dropped while Redis was away.
    let line = said
        .lines()
        .find(|l| l.starts_with(&format!("sniffer: events to {url}: ")))
        .unwrap_or_else(|| panic!("no summary:\n{said}"));
    let n: Vec<u64> = line
        .rsplit(": ")
        .next()
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let (sent, dropped, queue_full) = (n[0], n[1], n[2]);
    assert_eq!(sent + dropped, 3 * names.len() as u64 + 1, "{line}");
    assert!(queue_full > 0, "the outage overflowed the queue: {line}");
    // What Redis acknowledged survived the kill (fsync on every write): the stream holds
    // at least every record counted as sent.
    let events = stream(&redis, "live");
    assert!(
        events.len() as u64 >= sent,
        "{} entries, {line}",
        events.len()
    );
    let got = paths(&events);
    for name in phase("a").iter().chain(&phase("c")) {
        assert!(got.contains(name), "{name} missing: {got:?}");
    }
}

#[test]
fn issue15_two_sensors_one_redis_same_community_id() {
    if !(require_root("issue15_two_sensors") && require_redis("issue15_two_sensors")) {
        return;
    }
    let server_ns = Netns::new("2s").unwrap();
    let client = Netns::new("2c").unwrap();
    let collector = Netns::new("2r").unwrap();
    let link = VethPair::new(&server_ns, &client).unwrap();
    // Each host reaches the collector over its own link.
    let to_server = VethPair::new(&collector, &server_ns).unwrap();
    let to_client = VethPair::new(&collector, &client).unwrap();
    let www = tempfile::tempdir().unwrap();
    for name in ["one.bin", "two.bin"] {
        write_pattern_file(&www.path().join(name), BODY_LEN).unwrap();
    }
    let _nginx = HttpServer::start(&server_ns, www.path(), &[80]).unwrap();
    let redis = RedisServer::start_in(Some(&collector), Ipv4Addr::UNSPECIFIED.into(), &[]).unwrap();
    let url_from_server = format!("redis://{}:{}/fleet", to_server.a_v4, redis.port);
    let url_from_client = format!("redis://{}:{}/fleet", to_client.a_v4, redis.port);
    let (out_s, out_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, a_err) = start_sensor(
        &server_ns,
        &link.a_if,
        out_s.path().to_str().unwrap(),
        &["--events", &url_from_server, "--sensor", "web-server"],
    );
    let (b, b_err) = start_sensor(
        &client,
        &link.b_if,
        out_c.path().to_str().unwrap(),
        &["--events", &url_from_client, "--sensor", "web-client"],
    );
    fetch(&client, link.a_addr(false), "one.bin");
    fetch(&client, link.a_addr(true), "two.bin");
    wait_for(&redis, "fleet", "both sensors' transactions", |e| {
        e.iter().filter(|e| e["type"] == "transaction").count() == 4
    });
    thread::sleep(Duration::from_millis(300));
    let said_a = stop_sensor(a, a_err);
    let said_b = stop_sensor(b, b_err);

    // The consumer's view: one stream, both sensors.
    let events = stream(&redis, "fleet");
    let sensors: BTreeSet<&str> = events.iter().filter_map(|e| e["sensor"].as_str()).collect();
    assert_eq!(
        sensors,
        BTreeSet::from(["web-client", "web-server"]),
        "{events:?}"
    );
    for kind in ["transaction", "file", "flow", "stats"] {
        for sensor in &sensors {
            assert!(
                events
                    .iter()
                    .any(|e| e["type"] == kind && e["sensor"] == *sensor),
                "no {kind} from {sensor}\n{said_a}\n{said_b}"
            );
        }
    }
    // Per connection (client port), each side's transaction, file and flow records carry
    // one Community ID, the same on both sensors.
    let mut ids: BTreeMap<u64, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["type"] != "stats") {
        ids.entry(e["orig_port"].as_u64().unwrap())
            .or_default()
            .entry(e["sensor"].as_str().unwrap().to_owned())
            .or_default()
            .insert(e["community_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 2, "two connections: {ids:?}");
    for (port, by_sensor) in &ids {
        assert_eq!(by_sensor.len(), 2, "{port}: {by_sensor:?}");
        let all: BTreeSet<&String> = by_sensor.values().flatten().collect();
        assert_eq!(
            all.len(),
            1,
            "{port}: one Community ID on both sides: {by_sensor:?}"
        );
        let id = all.into_iter().next().unwrap();
        let e = events
            .iter()
            .find(|e| e["orig_port"] == *port && e["type"] == "flow")
            .unwrap();
        let client: std::net::SocketAddr = format!(
            "{}:{port}",
            match e["orig_ip"].as_str().unwrap().parse::<IpAddr>().unwrap() {
                IpAddr::V6(a) => format!("[{a}]"),
                IpAddr::V4(a) => a.to_string(),
            }
        )
        .parse()
        .unwrap();
        let server = std::net::SocketAddr::new(e["resp_ip"].as_str().unwrap().parse().unwrap(), 80);
        assert_eq!(
            *id,
            sniffer::wire::community_id(0, server, client),
            "{port}"
        );
    }
}
