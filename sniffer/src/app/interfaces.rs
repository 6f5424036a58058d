//! `sniffer -D`: the devices live capture can use, numbered as tcpdump numbers them, with
//! their state; a device's name (or `any`) goes after `-i`.

use std::io::Write as _;

use super::AppError;

/// One device, from `/sys/class/net`.
struct Device {
    index: u32,
    name: String,
    flags: u32,
    /// The link is up (`operstate`).
    running: bool,
}

pub(super) fn run() -> Result<(), AppError> {
    let io = |source| AppError::Io {
        what: "/sys/class/net".into(),
        source,
    };
    let mut devices = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net").map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let read = |what: &str| {
            std::fs::read_to_string(entry.path().join(what))
                .ok()
                .and_then(|v| {
                    let v = v.trim();
                    v.strip_prefix("0x")
                        .map_or_else(|| v.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
                })
        };
        let up = std::fs::read_to_string(entry.path().join("operstate"))
            .is_ok_and(|s| s.trim() == "up" || s.trim() == "unknown");
        devices.push(Device {
            index: read("ifindex").unwrap_or(0),
            flags: read("flags").unwrap_or(0),
            running: up,
            name,
        });
    }
    devices.sort_by_key(|d| d.index);
    let mut out = std::io::stdout().lock();
    let mut n = 0;
    for d in &devices {
        n += 1;
        let mut state = Vec::new();
        if d.flags & libc::IFF_UP as u32 != 0 {
            state.push("Up");
        }
        if d.running && d.flags & libc::IFF_UP as u32 != 0 {
            state.push("Running");
        }
        if d.flags & libc::IFF_LOOPBACK as u32 != 0 {
            state.push("Loopback");
        }
        writeln!(out, "{n}.{} [{}]", d.name, state.join(", ")).map_err(io)?;
    }
    writeln!(out, "{}.any (every device)", n + 1).map_err(io)?;
    Ok(())
}
