//! What this machine can do at best for the work a benchmark requires, measured beside the
//! benchmark so that a missed target can be told apart from a target out of reach.
//!
//! Each probe times one thread's CPU (`CLOCK_THREAD_CPUTIME_ID`) over a simple loop doing
//! only the unavoidable part of the work, and returns seconds per GB (10^9 bytes). Each is
//! the median of three runs.

use std::{fs::File, os::unix::fs::FileExt as _, path::Path};

use sha2::{Digest as _, Sha256};

/// Bytes per probe run.
const PROBE_BYTES: usize = 1 << 30;
/// The chunk size the sniffer's writer and the kernel program work in.
const CHUNK: usize = 64 * 1024;

/// CPU seconds of this thread so far.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Median of three runs of `f`, each returning CPU seconds for `PROBE_BYTES`, per GB.
fn median_per_gb(mut f: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(f()? / (PROBE_BYTES as f64 / 1e9));
    }
    v.sort_by(f64::total_cmp);
    Ok(v[1])
}

/// sha256 (the sha2 crate the sniffer uses, with SHA-NI where the CPU has it) over a
/// buffer already in cache.
pub fn sha256_secs_per_gb() -> anyhow::Result<f64> {
    let buf = vec![0x5a_u8; CHUNK];
    median_per_gb(|| {
        let t = thread_cpu();
        let mut h = Sha256::new();
        for _ in 0..PROBE_BYTES / CHUNK {
            h.update(&buf);
        }
        std::hint::black_box(h.finalize());
        Ok(thread_cpu() - t)
    })
}

/// Writing new files in `dir` with 64 KiB `pwrite`s, as the sniffer's writer does
/// (kernel time: page allocation and copy).
pub fn write_secs_per_gb(dir: &Path) -> anyhow::Result<f64> {
    let buf = vec![0xa5_u8; CHUNK];
    let path = dir.join("floor-probe.bin");
    let result = median_per_gb(|| {
        let f = File::create(&path)?;
        let t = thread_cpu();
        for i in 0..PROBE_BYTES / CHUNK {
            f.write_all_at(&buf, (i * CHUNK) as u64)?;
        }
        let cpu = thread_cpu() - t;
        drop(f);
        std::fs::remove_file(&path)?;
        Ok(cpu)
    });
    let _ = std::fs::remove_file(&path);
    result
}

/// Copying 64 KiB pieces of a source no one has read yet (2 GiB, larger than the caches)
/// into a ring of `ring_bytes`, as the kernel program copies each packet into the BPF
/// ring. Plain `memcpy`, without the kernel's walk over the socket buffer's fragments,
/// so this is a lower bound on what the kernel pays.
pub fn ring_copy_secs_per_gb(ring_bytes: usize) -> anyhow::Result<f64> {
    const SOURCE: usize = 2 << 30;
    anyhow::ensure!(
        ring_bytes >= 2 * CHUNK,
        "ring of {ring_bytes} bytes is too small"
    );
    let source = vec![1_u8; SOURCE];
    let mut ring = vec![0_u8; ring_bytes];
    let mut s = 0;
    let mut r = 0;
    median_per_gb(|| {
        let cpu = thread_cpu();
        for _ in 0..PROBE_BYTES / CHUNK {
            ring[r..r + CHUNK].copy_from_slice(&source[s..s + CHUNK]);
            s = if s + 2 * CHUNK > SOURCE { 0 } else { s + CHUNK };
            // Records are a header plus the packet, so they do not stay 64 KiB aligned.
            r += CHUNK + 64;
            if r + CHUNK > ring_bytes {
                r = 0;
            }
        }
        std::hint::black_box(&ring);
        Ok(thread_cpu() - cpu)
    })
}
