//! Count the reassembled bytes of every TCP session in a capture: the event API in brief.
//!
//! `cargo run --example count_bytes -- dump.pcap`

use std::collections::HashMap;

use sniffer::{Direction, EndReason, Listener, SessionInfo, Timestamp, capture, flow, pipeline};

#[derive(Default)]
struct Counter {
    bytes: HashMap<u64, [u64; 2]>,
    missing: HashMap<u64, u64>,
}

impl Listener for Counter {
    fn data(&mut self, s: &SessionInfo, dir: Direction, _off: u64, data: &[u8], _: Timestamp) {
        self.bytes.entry(s.stream).or_default()[dir.index()] += data.len() as u64;
    }
    fn gap(&mut self, s: &SessionInfo, _: Direction, _off: u64, len: u64, _: Timestamp) {
        *self.missing.entry(s.stream).or_default() += len;
    }
    fn session_end(&mut self, s: &SessionInfo, why: EndReason, _: Timestamp) {
        let [up, down] = self.bytes.remove(&s.stream).unwrap_or_default();
        let missing = self.missing.remove(&s.stream).unwrap_or_default();
        println!(
            "{} {} > {}: {up} bytes up, {down} down, {missing} missing ({why})",
            s.stream, s.client, s.server
        );
    }
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: count_bytes FILE"))?;
    let mut source = capture::open(&capture::Input::Files(vec![path.into()]))?;
    let stats = pipeline::run(
        source.as_mut(),
        &flow::FlowConfig::default(),
        &mut Counter::default(),
    )?;
    eprintln!(
        "{} sessions, {} gap bytes",
        stats.flow.sessions, stats.flow.gap_bytes
    );
    Ok(())
}
