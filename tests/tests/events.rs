//! Issue 15: every event into a Redis Stream, with a real `redis-server` on loopback.
//! Records arrive complete and in order; Redis refusing XADD (wrong type at the key, out of
//! memory, authentication required) is warned about once and every refused record
//! counted; bad URLs exit 2; an unreachable Redis is a warning and the run goes on; TLS
//! (`rediss://`); and, with a synthetic capture streamed on standard input, memory stays
//! flat while events flow into a stream capped by MAXLEN.

use std::{
    collections::BTreeMap,
    io::{BufWriter, Read as _, Write as _},
    process::{Command, Output, Stdio},
    thread,
    time::Duration,
};

use tests::{
    corpus,
    redis::{RedisServer, free_port, require_redis},
    sniffer_bin,
};

/// The capture with many records: 1000 HTTP transactions (one response lost) on one
/// session, 999 bodies saved.
const THOUSAND: &str = "zeek__http__1000-requests-one-dropped-response.pcap";

fn sniffer(args: &[&str]) -> Output {
    Command::new(sniffer_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The `event` fields of every entry of the stream at `key`, in stream order.
fn stream(server: &RedisServer, key: &str, auth: &[&str]) -> Vec<String> {
    let mut args = auth.to_vec();
    args.extend(["--raw", "XRANGE", key, "-", "+"]);
    let out = server.cli(&args).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len() % 3, 0, "id, field, value per entry:\n{out}");
    lines
        .chunks(3)
        .map(|e| {
            assert_eq!(e[1], "event", "{e:?}");
            e[2].to_owned()
        })
        .collect()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// The line without its `sensor` field, as local outputs write it.
fn without_sensor(line: &str, sensor: &str) -> String {
    let with = format!(r#","sensor":"{sensor}","#);
    assert!(line.contains(&with), "no sensor {sensor}: {line}");
    line.replacen(&with, ",", 1)
}

/// `(sent, dropped, queue full, refused, unsent)` from the summary line of `url`.
fn summary(stderr: &str, url: &str) -> [u64; 5] {
    let prefix = format!("sniffer: events to {url}: ");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no summary for {url} in:\n{stderr}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(n.len(), 5, "{line}");
    assert_eq!(n[1], n[2] + n[3] + n[4], "dropped is the sum: {line}");
    [n[0], n[1], n[2], n[3], n[4]]
}

#[test]
fn issue15_records_arrive_in_order_and_complete() {
    const T: &str = "issue15_records_arrive_in_order_and_complete";
    let (true, Some(corpus)) = (require_redis(T), corpus(T)) else {
        return;
    };
    let redis = RedisServer::start(&[]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("saved");
    let capture = corpus.join(THOUSAND);
    let url = format!("redis://127.0.0.1:{}/sniffer:test", redis.port);
    #[rustfmt::skip]
    let run = sniffer(&[
        "-r", capture.to_str().unwrap(), "--extract-all", "--out", dir.to_str().unwrap(),
        "--json", "--events", &url, "--sensor", "sensor-a", "--events-stats-interval", "0",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let events = stream(&redis, "sniffer:test", &[]);
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        let kind = json(e)["type"].as_str().unwrap().to_owned();
        by_type
            .entry(kind)
            .or_default()
            .push(without_sensor(e, "sensor-a"));
    }
    // Transactions: exactly what --json printed, in the same order.
    let printed: Vec<String> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(printed.len(), 1000);
    assert_eq!(by_type["transaction"], printed);
    // Files: exactly the lines of index.jsonl, in the same order, sha256 included.
    let index: Vec<String> = std::fs::read_to_string(dir.join("index.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(index.len(), 999);
    assert_eq!(by_type["file"], index);
    // Flows: what `flows --json` prints for the same capture.
    let flows = sniffer(&["flows", "-r", capture.to_str().unwrap(), "--json"]);
    let flows: Vec<String> = String::from_utf8(flows.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(by_type["flow"], flows);
    // One stats record, at the end, that counts the run.
    let stats = &by_type["stats"];
    assert_eq!(stats.len(), 1, "{stats:?}");
    let stats = json(&stats[0]);
    assert_eq!(stats["transactions"], 1000);
    assert_eq!(stats["files"], 999);
    assert_eq!(stats["frames"], 4102);
    assert_eq!(by_type.len(), 4, "{:?}", by_type.keys());
    assert_eq!(events.len(), 1000 + 999 + 1 + 1);
    assert_eq!(summary(&stderr, &url), [2001, 0, 0, 0, 0]);
    // The same session has the same Community ID in every record.
    let ids: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| json(e)["community_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

/// Runs the thousand-transaction capture against `redis` (key `k`) and a file destination
/// at once; returns (stderr, the redis counts, the records the file got).
fn refused_run(redis: &RedisServer, url_auth: &str) -> (String, [u64; 5], usize) {
    let corpus = corpus("refused").unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("saved");
    let file = out.path().join("events.jsonl");
    let file_url = format!("file://{}", file.display());
    let url = format!("redis://{url_auth}127.0.0.1:{}/k", redis.port);
    #[rustfmt::skip]
    let run = sniffer(&[
        "-r", corpus.join(THOUSAND).to_str().unwrap(), "--extract-all",
        "--out", dir.to_str().unwrap(), "--events", &url, "--events", &file_url,
        "--events-stats-interval", "0",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    // Saving went on untouched.
    let index = std::fs::read_to_string(dir.join("index.jsonl")).unwrap();
    assert_eq!(index.lines().count(), 999, "{stderr}");
    let shown = url.replace(":pw@", ":***@");
    let counts = summary(&stderr, &shown);
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert_eq!(summary(&stderr, &file_url), [lines as u64, 0, 0, 0, 0]);
    (stderr, counts, lines)
}

fn assert_refused_once(stderr: &str, counts: [u64; 5], records: usize, code: &str) {
    assert_eq!(
        counts,
        [0, records as u64, 0, records as u64, 0],
        "every record refused and counted:\n{stderr}"
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("Redis refused XADD"))
        .collect();
    assert_eq!(warnings.len(), 1, "warned once:\n{stderr}");
    assert!(warnings[0].contains(code), "{code}: {}", warnings[0]);
}

#[test]
fn issue15_a_key_of_another_type_is_refused_warned_once_and_counted() {
    let (true, Some(_)) = (require_redis("wrongtype"), corpus("wrongtype")) else {
        return;
    };
    let redis = RedisServer::start(&[]).unwrap();
    redis.cli(&["SET", "k", "not a stream"]).unwrap();
    let (stderr, counts, records) = refused_run(&redis, "");
    assert_eq!(records, 1000 + 999 + 1 + 1);
    assert_refused_once(&stderr, counts, records, "WRONGTYPE");
    assert_eq!(redis.cli(&["GET", "k"]).unwrap().trim(), "not a stream");
}

#[test]
fn issue15_redis_out_of_memory_is_warned_once_and_counted() {
    let (true, Some(_)) = (require_redis("oom"), corpus("oom")) else {
        return;
    };
    let redis =
        RedisServer::start(&["--maxmemory", "1", "--maxmemory-policy", "noeviction"]).unwrap();
    let (stderr, counts, records) = refused_run(&redis, "");
    assert_refused_once(&stderr, counts, records, "OOM");
    assert_eq!(redis.cli(&["EXISTS", "k"]).unwrap().trim(), "0");
}

#[test]
fn issue15_redis_wanting_a_password_is_warned_once_and_counted() {
    let (true, Some(_)) = (require_redis("noauth"), corpus("noauth")) else {
        return;
    };
    let redis = RedisServer::start(&["--requirepass", "pw"]).unwrap();
    let (stderr, counts, records) = refused_run(&redis, "");
    assert_refused_once(&stderr, counts, records, "NOAUTH");
    // With the password in the URL, the same run is delivered (and never shown).
    let (stderr, counts, records) = refused_run(&redis, ":pw@");
    assert_eq!(counts, [records as u64, 0, 0, 0, 0], "{stderr}");
    assert!(!stderr.contains(":pw@"), "{stderr}");
    assert_eq!(stream(&redis, "k", &["-a", "pw"]).len(), records);
}

#[test]
fn issue15_bad_urls_exit_2_and_say_why() {
    for (url, says) in [
        ("kafka://broker:9092/t", "unknown scheme \"kafka\""),
        ("redis://127.0.0.1:6379", "no stream key"),
        ("redis:///k", "no host"),
        ("redis://h:http/k", "invalid port"),
        ("file://e.jsonl?rotate=lots", "not a size"),
    ] {
        let run = sniffer(&["-r", "/dev/null", "--events", url]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{url}: {stderr}");
        assert!(
            stderr.contains(&format!("--events {url}: ")) && stderr.contains(says),
            "{url}: {stderr}"
        );
    }
}

#[test]
fn issue15_an_unreachable_redis_is_a_warning_and_the_run_goes_on() {
    let Some(corpus) = corpus("unreachable") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("saved");
    let url = format!("redis://127.0.0.1:{}/k", free_port().unwrap());
    #[rustfmt::skip]
    let run = sniffer(&[
        "-r", corpus.join(THOUSAND).to_str().unwrap(), "--extract-all",
        "--out", dir.to_str().unwrap(), "--events", &url,
        "--events-flush-timeout", "1", "--events-stats-interval", "0",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("index.jsonl"))
            .unwrap()
            .lines()
            .count(),
        999
    );
    let warned = stderr.lines().filter(|l| l.contains("unreachable")).count();
    assert!(warned >= 1, "{stderr}");
    let [sent, dropped, ..] = summary(&stderr, &url);
    assert_eq!((sent, dropped), (0, 1000 + 999 + 1 + 1), "{stderr}");
}

#[test]
fn issue15_rediss_speaks_tls() {
    let (true, Some(corpus)) = (require_redis("tls"), corpus("tls")) else {
        return;
    };
    // A test CA, and a server certificate for localhost signed by it.
    let certs = tempfile::tempdir().unwrap();
    let path = |name: &str| certs.path().join(name).to_str().unwrap().to_owned();
    let (ca, ca_key, cert, key, csr, ext) = (
        path("ca.pem"),
        path("ca.key"),
        path("cert.pem"),
        path("key.pem"),
        path("leaf.csr"),
        path("leaf.ext"),
    );
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    #[rustfmt::skip]
    let steps = [
        &["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-subj", "/CN=sniffer test CA", "-keyout", &ca_key, "-out", &ca][..],
        &["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
          "-keyout", &key, "-out", &csr],
        &["openssl", "x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key,
          "-CAcreateserial", "-days", "2", "-extfile", &ext, "-out", &cert],
    ];
    for args in steps {
        tests::run_args(args).unwrap();
    }
    let tls_port = free_port().unwrap().to_string();
    #[rustfmt::skip]
    let redis = RedisServer::start(&[
        "--tls-port", &tls_port, "--tls-cert-file", &cert, "--tls-key-file", &key,
        "--tls-auth-clients", "no",
    ])
    .unwrap();
    let url = format!("rediss://localhost:{tls_port}/tls");
    let capture = corpus.join("zeek__http__get-gzip.pcap");
    let run = Command::new(sniffer_bin())
        .args(["-r", capture.to_str().unwrap(), "--events", &url])
        .args(["--extract", "none/none", "--events-stats-interval", "0"])
        // The system's trusted roots, as rustls-native-certs reads them, are the test CA.
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // A transaction, a flow and the stats record, over TLS; the plain port agrees.
    assert_eq!(summary(&stderr, &url), [3, 0, 0, 0, 0], "{stderr}");
    let got = stream(&redis, "tls", &[]);
    assert_eq!(got.len(), 3);
    assert_eq!(json(&got[0])["url"], "http://httpbin.org/gzip");
}

/// (from the client, seq, ack, SYN, FIN, payload)
type Packet<'a> = (bool, u32, u32, bool, bool, &'a [u8]);

/// One HTTP transaction per session, each a new client port: SYN, SYN-ACK, request,
/// response, FINs, 10 ms of capture time apart. Endless; `n` selects the session.
fn transaction_frames(n: u64, out: &mut Vec<u8>) {
    use etherparse::PacketBuilder;
    let client = [10, 1, (n >> 16) as u8, (n >> 8) as u8];
    let server = [10, 2, 0, 1];
    let port = 1024 + (n % 60_000) as u16;
    let ts = 1_700_000_000_000_000 + n * 10_000; // microseconds
    let request = format!("GET /item/{n} HTTP/1.1\r\nHost: gen.test\r\n\r\n");
    let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    let (c0, s0) = (1000u32, 5000u32);
    let (rq, rs) = (request.len() as u32, response.len() as u32);
    let packets: [Packet<'_>; 7] = [
        (true, c0, 0, true, false, b""),
        (false, s0, c0 + 1, true, false, b""),
        (true, c0 + 1, s0 + 1, false, false, request.as_bytes()),
        (
            false,
            s0 + 1,
            c0 + 1 + rq,
            false,
            false,
            response.as_bytes(),
        ),
        (true, c0 + 1 + rq, s0 + 1 + rs, false, true, b""),
        (false, s0 + 1 + rs, c0 + 2 + rq, false, true, b""),
        (true, c0 + 2 + rq, s0 + 2 + rs, false, false, b""),
    ];
    for (i, (up, seq, ack, syn, fin, payload)) in packets.into_iter().enumerate() {
        let (src, dst, sp, dp) = if up {
            (client, server, port, 80)
        } else {
            (server, client, 80, port)
        };
        let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, seq, 65535);
        if syn {
            b = b.syn();
        }
        if ack > 0 {
            b = b.ack(ack);
        }
        if fin {
            b = b.fin();
        }
        let mut frame = Vec::new();
        b.write(&mut frame, payload).unwrap();
        let t = ts + i as u64;
        out.extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn issue15_memory_stays_flat_while_events_flow_into_a_capped_stream() {
    if !require_redis("memory") {
        return;
    }
    let redis = RedisServer::start(&["--appendonly", "no"]).unwrap();
    let url = format!("redis://127.0.0.1:{}/capped", redis.port);
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(sniffer_bin())
        .args(["-r", "-", "--out", out.path().to_str().unwrap()])
        .args(["--events", &url, "--events-maxlen", "1000"])
        .args(["--events-stats-interval", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
    // pcap header: microsecond timestamps, snaplen 65535, raw IPv4 (linktype 228).
    stdin.write_all(&0xa1b2_c3d4u32.to_le_bytes()).unwrap();
    stdin
        .write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    stdin.write_all(&65535u32.to_le_bytes()).unwrap();
    stdin.write_all(&228u32.to_le_bytes()).unwrap();
    // 8 rounds of 6,000 sessions: 96,000 events (a transaction and a flow each).
    let (rounds, per_round) = (8u64, 6_000u64);
    let mut rss = Vec::new();
    let mut buf = Vec::new();
    for round in 0..rounds {
        for n in round * per_round..(round + 1) * per_round {
            transaction_frames(n, &mut buf);
            if buf.len() > 1 << 20 {
                stdin.write_all(&buf).unwrap();
                buf.clear();
            }
        }
        stdin.write_all(&buf).unwrap();
        stdin.flush().unwrap();
        buf.clear();
        // Let the sniffer catch up with what was written (the pipe holds little).
        thread::sleep(Duration::from_millis(200));
        rss.push(rss_kib(pid));
    }
    drop(stdin);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    // After the first rounds (the table fills with closed sessions lingering for 30 s of
    // capture time, buffers warm up) resident memory does not grow with the events.
    let settled = rss[2];
    let last = *rss.last().unwrap();
    eprintln!("RSS per round (KiB): {rss:?}");
    assert!(
        last <= settled + 4096,
        "memory grew from {settled} KiB to {last} KiB over {} events: {rss:?}",
        2 * rounds * per_round
    );
    assert!(stderr.contains("48000 HTTP transactions"), "{stderr}");
    let [sent, dropped, ..] = summary(&stderr, &url);
    assert!(sent + dropped >= 2 * rounds * per_round, "{stderr}");
    assert!(sent > 0, "{stderr}");
    // The stream stays near its cap (MAXLEN ~ trims whole nodes of 100 entries).
    let len: u64 = redis
        .cli(&["XLEN", "capped"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1000..=1200).contains(&len), "XLEN {len}");
}
