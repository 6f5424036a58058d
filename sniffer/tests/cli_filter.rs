//! Issue 13 on the command line: a filter expression as trailing words for every command,
//! `--port` applied to files too, and a bad expression refused with exit code 2 and a
//! message naming the token and its column.
//!
//! The capture: two HTTP sessions, 10.0.0.1 to 10.0.0.2 port 80 (`GET /eighty`) and
//! port 8080 (`GET /eighty-eighty`), plus a UDP datagram to port 80 and an ARP frame.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use etherparse::PacketBuilder;
use sniffer::{
    LinkType, PacketSource, Timestamp,
    capture::{
        Frame,
        file::FileSource,
        writer::{Format, PcapWriter},
    },
};

const MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_S: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

/// The frames of one HTTP session from client port `cport` to server port `sport`.
fn session(cport: u16, sport: u16, path: &str, body: &str) -> Vec<Vec<u8>> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: example\r\n\r\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (c_isn, s_isn) = (1000_u32, 5000_u32);
    let c = |seq: u32, ack: u32| {
        PacketBuilder::ethernet2(MAC_C, MAC_S)
            .ipv4(CLIENT, SERVER, 64)
            .tcp(cport, sport, seq, 65535)
            .ack(ack)
    };
    let s = |seq: u32, ack: u32| {
        PacketBuilder::ethernet2(MAC_S, MAC_C)
            .ipv4(SERVER, CLIENT, 64)
            .tcp(sport, cport, seq, 65535)
            .ack(ack)
    };
    let write = |b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, payload: &[u8]| {
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    };
    let (req, resp) = (request.len() as u32, response.len() as u32);
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(MAC_C, MAC_S)
        .ipv4(CLIENT, SERVER, 64)
        .tcp(cport, sport, c_isn, 65535)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    vec![
        syn,
        write(s(s_isn, c_isn + 1).syn(), &[]),
        write(c(c_isn + 1, s_isn + 1), &[]),
        write(c(c_isn + 1, s_isn + 1).psh(), request.as_bytes()),
        write(s(s_isn + 1, c_isn + 1 + req).psh(), response.as_bytes()),
        write(c(c_isn + 1 + req, s_isn + 1 + resp).fin(), &[]),
        write(s(s_isn + 1 + resp, c_isn + 2 + req).fin(), &[]),
        write(c(c_isn + 2 + req, s_isn + 2 + resp), &[]),
    ]
}

const BODY_80: &str = "the body served on port 80";
const BODY_8080: &str = "the body served on port 8080";

/// Writes the capture; returns its path and its frames in order, with the indices of
/// the port-80 session's frames.
fn capture(dir: &Path) -> (PathBuf, Vec<Vec<u8>>, Vec<usize>) {
    let a = session(40000, 80, "/eighty", BODY_80);
    let b = session(40001, 8080, "/eighty-eighty", BODY_8080);
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(MAC_C, MAC_S)
        .ipv4(CLIENT, SERVER, 64)
        .udp(40002, 80)
        .write(&mut udp, b"not tcp")
        .unwrap();
    let arp = [&MAC_S[..], &MAC_C, &[0x08, 0x06], &[0; 28]].concat();
    // Interleaved: a0 b0 a1 b1 …, then the UDP datagram and the ARP frame.
    let mut frames = Vec::new();
    let mut port80 = Vec::new();
    for (x, y) in a.into_iter().zip(b) {
        port80.push(frames.len());
        frames.push(x);
        frames.push(y);
    }
    frames.push(udp);
    frames.push(arp);
    let path = dir.join("two-sessions.pcap");
    let mut w = PcapWriter::new(
        std::fs::File::create(&path).unwrap(),
        Format::Pcap,
        65535,
        LinkType::Ethernet,
        None,
    );
    for (i, f) in frames.iter().enumerate() {
        w.write_frame(&Frame {
            ts: Timestamp::from_parts(1_700_000_000, i as u32 * 1000),
            link_type: LinkType::Ethernet,
            data: f,
            orig_len: f.len() as u32,
        })
        .unwrap();
    }
    w.finish().unwrap();
    (path, frames, port80)
}

fn sniffer(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn frames_of(path: &Path) -> Vec<Vec<u8>> {
    let mut src = FileSource::open(&[path.to_owned()]).unwrap();
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().unwrap() {
        out.push(f.data.to_vec());
    }
    out
}

#[test]
fn issue13_capture_r_with_port_writes_only_that_ports_tcp_packets() {
    let dir = tempfile::tempdir().unwrap();
    let (input, frames, port80) = capture(dir.path());
    let input = input.to_str().unwrap();
    for filter in [&["--port", "80"][..], &["tcp", "port", "80"], &["port 80"]] {
        let out_file = dir.path().join("out.pcap");
        let out_s = out_file.to_str().unwrap();
        let out = sniffer(
            dir.path(),
            &[&["capture", "-r", input, "-w", out_s][..], filter].concat(),
        );
        assert!(out.status.success(), "{filter:?}: {}", stderr(&out));
        let want: Vec<Vec<u8>> = port80.iter().map(|&i| frames[i].clone()).collect();
        assert_eq!(frames_of(&out_file), want, "{filter:?}");
        assert!(
            stderr(&out).contains(&format!(
                "{} rejected by the filter, {} written",
                frames.len() - want.len(),
                want.len()
            )),
            "{}",
            stderr(&out)
        );
    }
    // Without a filter, a file is converted whole.
    let out_file = dir.path().join("all.pcap");
    let out = sniffer(
        dir.path(),
        &["capture", "-r", input, "-w", out_file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(frames_of(&out_file), frames);
}

#[test]
fn issue13_port_and_expressions_apply_to_files_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _, _) = capture(dir.path());
    let input = input.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = sniffer(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    // The default command, the expression as tcpdump users write it.
    let http = run(&["-r", input, "tcp port 80", "-o", "o1"]);
    assert!(
        http.contains("/eighty") && !http.contains("/eighty-eighty"),
        "{http}"
    );
    let http = run(&["-r", input, "port", "8080", "-o", "o2"]);
    assert!(http.contains("/eighty-eighty"), "{http}");
    let http = run(&["http", "-r", input, "--port", "8080", "-o", "o3"]);
    assert!(
        http.contains("/eighty-eighty") && !http.contains("/eighty "),
        "{http}"
    );
    // flows: one line per session mentions the server.
    let sessions = |s: &str| s.lines().filter(|l| l.contains("10.0.0.2")).count();
    assert_eq!(sessions(&run(&["flows", "-r", input])), 2);
    assert_eq!(sessions(&run(&["flows", "-r", input, "--port", "8080"])), 1);
    assert_eq!(
        sessions(&run(&["flows", "-r", input, "not", "port", "80"])),
        1
    );
    // follow: stream 0 is the first session the filter lets through.
    let body = |s: String| s.rsplit("\r\n\r\n").next().unwrap().to_owned();
    let raw = ["--format", "raw", "--dir", "resp"];
    assert_eq!(
        body(run(&[&["follow", "-r", input, "0"][..], &raw].concat())),
        BODY_80
    );
    assert_eq!(
        body(run(&[
            &["follow", "-r", input, "0", "--port", "8080"][..],
            &raw
        ]
        .concat())),
        BODY_8080
    );
    assert_eq!(
        body(run(&[
            &["follow", "-r", input, "0"][..],
            &raw,
            &["dst port 8080 or src port 8080"]
        ]
        .concat())),
        BODY_8080
    );
    // With --flow there is no stream number: every word is the expression's.
    assert_eq!(
        body(run(&[
            &[
                "follow",
                "-r",
                input,
                "--flow",
                "10.0.0.1:40001-10.0.0.2:8080"
            ][..],
            &raw,
            &["port", "8080"]
        ]
        .concat())),
        BODY_8080
    );
}

#[test]
fn issue13_a_bad_expression_exits_2_naming_the_token_and_its_column() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _, _) = capture(dir.path());
    let input = input.to_str().unwrap();
    let out_file = dir.path().join("x.pcap");
    let out_file = out_file.to_str().unwrap();
    #[rustfmt::skip]
    let cases: &[(&[&str], &str)] = &[
        (&["-r", input, "port", "http2"],
         "sniffer: filter: column 6: expected a port number after 'port', found 'http2'\n"),
        (&["-r", input, "port 80 or"],
         "sniffer: filter: column 11: the filter ends early: expected a test such as 'port 80'\n"),
        (&["flows", "-r", input, "udp", "port", "53"],
         "sniffer: filter: column 1: 'udp' is not supported: sniffer sees only TCP, and every \
          filter means 'tcp and (…)'\n"),
        (&["follow", "-r", input, "0", "tcp[13]", "&", "2", "!=", "0"],
         "sniffer: filter: column 4: byte offsets such as 'tcp[13]' are not supported\n"),
        (&["capture", "-r", input, "-w", out_file, "net", "10.1.2.3/8"],
         "sniffer: filter: column 5: '10.1.2.3' has bits set beyond its network mask\n"),
        // Parsed before the device is opened: no privilege needed to hear about it.
        (&["capture", "-i", "lo", "-w", out_file, "host"],
         "sniffer: filter: column 5: the filter ends early: expected an address after 'host'\n"),
        (&["-i", "lo", "(port 80 or host 10.0.0.1"],
         "sniffer: filter: column 1: this '(' is never closed\n"),
        (&["follow", "-r", input, "port", "80"],
         "sniffer: follow \"port\": expected a stream number, as `sniffer flows` lists them \
          (or --flow A-B; a filter expression goes after the stream number)\n"),
    ];
    for (args, want) in cases {
        let out = sniffer(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), *want, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // --port or --all-tcp with an expression: which one is meant?
    for extra in [&["--port", "80"][..], &["--all-tcp"]] {
        let out = sniffer(
            dir.path(),
            &[&["flows", "-r", input][..], extra, &["port", "80"]].concat(),
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot be used with"),
            "{}",
            stderr(&out)
        );
    }
}
