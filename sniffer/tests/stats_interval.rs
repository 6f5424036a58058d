//! Issue 12: `--stats-interval` on offline input goes by the wall clock while the input is
//! read: a capture fed slowly through standard input gets health lines as it goes, each
//! counting what was read so far. (The file source reads in 1 MiB pieces, so each batch
//! written is bigger than that.)

use std::{
    io::Read as _,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use etherparse::PacketBuilder;
use sniffer::capture::{
    Frame, LinkType, Timestamp,
    writer::{Format, PcapWriter},
};

/// Batches of full-sized SYNs (1.2 MB each) written this far apart, while the sniffer reads.
const PAUSE: Duration = Duration::from_millis(400);
const BATCHES: u16 = 6;
const PER_BATCH: u16 = 800;

fn syn(port: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(port, 80, 1, 1024)
        .syn()
        .write(&mut frame, &[0x5a; 1460])
        .unwrap();
    frame
}

#[test]
fn issue12_health_lines_while_a_slow_pipe_is_read() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .args(["flows", "-r", "-", "--stats-interval", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut w = PcapWriter::new(stdin, Format::Pcap, 65535, LinkType::Ethernet, None);
    for batch in 0..BATCHES {
        for i in 0..PER_BATCH {
            let port = 10_000 + batch * PER_BATCH + i;
            let data = syn(port);
            w.write_frame(&Frame {
                ts: Timestamp::from_parts(1_700_000_000 + u64::from(batch), u32::from(i)),
                link_type: LinkType::Ethernet,
                data: &data,
                orig_len: data.len() as u32,
            })
            .unwrap();
        }
        thread::sleep(PAUSE);
    }
    drop(w.finish().unwrap());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 2.4 s of reading, a line a second: one or two (never one per 64 frames).
    assert!(
        (1..=3).contains(&lines.len()),
        "{} health lines: {stderr}",
        lines.len()
    );
    let total = u64::from(BATCHES * PER_BATCH);
    let mut last = 0;
    for l in &lines {
        assert_eq!(l["v"], 1);
        assert_eq!(l["type"], "stats");
        assert!(l["kernel_seen"].is_null() && l["files"].is_null(), "{l}");
        let frames = l["frames"].as_u64().unwrap();
        // Written while reading: more than before, not yet everything.
        assert!(frames > last && frames < total, "{l}");
        assert_eq!(l["sessions"], frames, "one session per SYN: {l}");
        last = frames;
    }
    assert!(
        stderr.contains(&format!("{total} TCP sessions")),
        "the summary still ends the run: {stderr}"
    );
}
