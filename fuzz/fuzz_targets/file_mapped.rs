//! The memory-mapped pcap reader against the buffered one, over arbitrary bytes.
//!
//! The input is written to a file on tmpfs and read twice: by path (a classic pcap file
//! is then parsed through the sliding memory map, `capture/mapped.rs`) and as a byte
//! stream (always the buffered reader). Both must deliver the same frames, then fail
//! (or not) at the same byte offset with the same cause.

#![no_main]

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;
use sniffer::{PacketSource as _, capture::file::FileSource};

type Frames = Vec<(u64, Vec<u8>, u32)>;

fn drain(opened: Result<FileSource, sniffer::capture::file::FileError>) -> (Frames, String) {
    let mut source = match opened {
        Ok(s) => s,
        Err(e) => return (Vec::new(), e.to_string()),
    };
    let mut frames = Vec::new();
    loop {
        match source.next_frame() {
            Ok(Some(f)) => frames.push((f.ts.0, f.data.to_vec(), f.orig_len)),
            Ok(None) => return (frames, String::new()),
            Err(e) => return (frames, e.to_string()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = std::path::Path::new("/dev/shm");
    let mut file = tempfile::NamedTempFile::new_in(dir).expect("a temporary file on tmpfs");
    file.write_all(data).expect("written");
    let path = file.path().to_path_buf();
    let mapped = drain(FileSource::open(std::slice::from_ref(&path)));
    let name = path.display().to_string();
    let buffered = drain(FileSource::from_reader(&name, std::fs::File::open(&path).unwrap()));
    assert_eq!(mapped.0.len(), buffered.0.len(), "{} / {}", mapped.1, buffered.1);
    assert!(mapped.0 == buffered.0, "frames differ");
    assert_eq!(mapped.1, buffered.1);
});
