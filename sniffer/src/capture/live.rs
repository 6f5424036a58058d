//! Live capture: the eBPF socket filter selects packets in the kernel and hands them to
//! userspace through a BPF ring buffer.
//!
//! [`LiveSource::open`] loads the embedded program, fills its filter maps (`FILTER`,
//! `PORT_BITS`, `ADDRS`, from [`LiveOptions::filter`]) and its `CONFIG` map,
//! opens an AF_PACKET socket with protocol 0 (so it receives nothing yet), attaches the
//! filter, and only then binds the socket to the device with `ETH_P_ALL`: no unfiltered
//! packet is ever queued. For `-i any` ([`ANY`]) the socket is SOCK_DGRAM and bound to no
//! device: every device's packets, from their network header (raw IP). The filter
//! returns 0, so the socket itself never receives anything; matched packets travel
//! through the `RECORDS` ring buffer, which a current-thread tokio runtime inside the
//! source waits on (`AsyncFd`). How long it waits, and what wakes it, is
//! [`super::wake`]'s: batches under load, every record after a quiet spell, and on a
//! quiet device at most one wakeup per [`IDLE_TICK`].
//!
//! After `open`, the source makes no `bpf()` call but the counter reads: the ring is read
//! through its mapping and the wake flag is written through `CONFIG`'s. So it keeps
//! working after the program drops its privileges.
//!
//! Stopping (Ctrl-C, SIGTERM, or [`StopHandle::stop`]) closes the socket first. Closing an
//! AF_PACKET socket waits for an RCU grace period (`synchronize_net`), so every filter run
//! has finished and every record is in the ring; the source then drains the ring and ends.
//! That is why, at the end, `matched == delivered + ring_full + copy_failed` holds exactly.

use std::{
    io,
    mem::ManuallyDrop,
    os::fd::{AsFd as _, AsRawFd, FromRawFd, OwnedFd, RawFd},
    ptr::NonNull,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{
        Array, IterableMap as _, MapData, MapError, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
        ring_buf::RingBufItem,
    },
    programs::{ProgramError, SocketFilter},
};
use sniffer_ebpf::{Counter, RecordHeader, names};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::SignalKind,
};

use super::{
    CaptureError, Frame, IDLE_TICK, KernelCounters, KernelFilter, LinkType, PacketSource, Poll,
    SourceStats, Timestamp,
    wake::{Pacer, ReaderFlag, Timer},
};

/// What a live capture selects and how: the live source's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveOptions {
    /// Device name.
    pub iface: String,
    /// What the kernel selects: [`KernelFilter::ports`], [`KernelFilter::all_tcp`], or a
    /// pcap-filter expression compiled by `sniffer::filter`.
    pub filter: KernelFilter,
    /// Bytes copied per packet, 1..=65536.
    pub snaplen: u32,
    /// Ring buffer size in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
}

/// The kernel program, built by `build.rs` (empty when built with `AYA_BUILD_SKIP=1`).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sniffer-ebpf"));

/// The pseudo-device of every device (`-i any`).
pub const ANY: &str = "any";

/// `ARPHRD_RAWIP` from `<linux/if_arp.h>` (not in the libc crate).
const ARPHRD_RAWIP: u16 = 519;
/// `ARPHRD_IP6GRE` from `<linux/if_arp.h>` (not in the libc crate).
const ARPHRD_IP6GRE: u16 = 823;

/// The kernel wakes the reader each time the bytes waiting in the ring cross a multiple of
/// this (or of a sixteenth of a smaller ring): one wakeup per batch instead of one per
/// packet, and a reader that is late is woken again well before the ring is full.
const WAKEUP_BYTES: u32 = 1 << 20;

/// Live capture could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The device does not exist.
    #[error("no such device: {iface} (list devices with `ip link`)")]
    NoSuchDevice {
        /// The name given.
        iface: String,
    },
    /// The kernel said no: not root, or a capability is missing.
    #[error(
        "permission denied while {what}: run as root, or grant CAP_BPF and CAP_NET_RAW \
         (e.g. `sudo setcap cap_bpf,cap_net_raw+ep $(which sniffer)`)"
    )]
    NotPermitted {
        /// The step that failed.
        what: &'static str,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// The kernel cannot create a BPF ring buffer (Linux before 5.8).
    #[error(
        "this kernel ({release}) has no BPF ring buffer, which live capture needs: \
         use Linux 5.8 or newer, or capture with tcpdump and read the dump with -r"
    )]
    NoRingBuffer {
        /// `uname -r`.
        release: String,
        /// The map creation error.
        #[source]
        source: io::Error,
    },
    /// The binary was built without its eBPF program.
    #[error(
        "this sniffer was built without its eBPF program (AYA_BUILD_SKIP=1 was set): \
         rebuild without it, e.g. `cargo xtask build` (run `cargo xtask setup` first if \
         bpf-linker or the nightly rust-src are missing)"
    )]
    ObjectMissing,
    /// The kernel verifier refused the program.
    #[error(
        "the kernel refused the eBPF program ({source}); the verifier log is printed with \
         RUST_LOG=debug. This is a bug in sniffer: please report it with `uname -r`"
    )]
    Rejected {
        /// The verifier's log.
        log: String,
        /// The load error.
        #[source]
        source: io::Error,
    },
    /// Loading the object failed for another reason.
    #[error("loading the eBPF object failed: {source}")]
    Load {
        /// aya's error.
        #[source]
        source: EbpfError,
    },
    /// A map of the object could not be used.
    #[error("eBPF map {name}: {source}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// aya's error.
        #[source]
        source: MapError,
    },
    /// The program could not be attached.
    #[error("attaching the filter to the capture socket: {source}")]
    Attach {
        /// aya's error.
        #[source]
        source: ProgramError,
    },
    /// The device's link layer is not one this program can parse.
    #[error(
        "{iface}: link type ARPHRD {arphrd} is not supported (supported: Ethernet, loopback, \
         and raw-IP devices such as tun and wireguard)"
    )]
    UnsupportedLink {
        /// The device.
        iface: String,
        /// Its `ARPHRD_*` type.
        arphrd: u16,
    },
    /// A socket or runtime call failed.
    #[error("{what} ({iface}): {source}")]
    Os {
        /// The step that failed.
        what: &'static str,
        /// The device.
        iface: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl LiveError {
    fn os(what: &'static str, iface: &str, source: io::Error) -> Self {
        if is_permission(&source) {
            Self::NotPermitted { what, source }
        } else {
            Self::Os {
                what,
                iface: iface.to_owned(),
                source,
            }
        }
    }
}

fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

/// Stops a [`LiveSource`] from another thread: the source closes its socket, drains what
/// the kernel already queued, and then `next_frame` returns `Ok(None)`.
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<StopState>);

#[derive(Debug, Default)]
struct StopState {
    stop: AtomicBool,
    /// Wakes a sleeping reader (a permit is kept if it is not waiting yet).
    wake: tokio::sync::Notify,
}

impl StopHandle {
    /// Ask the source to stop; a waiting source wakes at once.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

/// Where the source is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The socket is open; records keep arriving.
    Running,
    /// The socket is closed; what is left in the ring is being delivered.
    Draining,
    /// Everything was delivered.
    Done,
}

/// The ring buffer, on the heap behind a raw pointer, so that a record borrowed from it
/// stays valid while the [`LiveSource`] owning both moves.
struct RingBox(NonNull<RingBuf<MapData>>);

// SAFETY: RingBuf<MapData> is Send; RingBox owns it exclusively (it is a leaked Box).
unsafe impl Send for RingBox {}

/// The ring's descriptor, for readiness polling only.
struct RingFd(RawFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The record handed out last: released (consumed in the ring) on the next call.
struct Current(
    #[expect(dead_code, reason = "held for its Drop, which consumes the record")]
    RingBufItem<'static>,
);

// SAFETY: the item refers only into the RingBox of the same LiveSource (a heap
// ConsumerPos and the mmapped data), which moves between threads with it.
unsafe impl Send for Current {}

/// A live device as a [`PacketSource`].
///
/// Invariants: while `phase` is `Running`, `socket` is `Some` and the filter is attached to
/// it; once `Draining`, `socket` is `None`, so no new record can enter the ring.
/// `current`, if any, borrows from `ring` (its `'static` is a lie told to the type
/// system): it is released before the ring is read again and before the ring is freed,
/// and the ring is touched only through `ring` while no `current` exists.
pub struct LiveSource {
    current: Option<Current>,
    /// Ends timed waits (registered with `runtime`, so declared, and dropped, before it).
    timer: AsyncFd<Timer>,
    runtime: tokio::runtime::Runtime,
    ready: ManuallyDrop<AsyncFd<RingFd>>,
    ring: RingBox,
    counters: PerCpuArray<MapData, u64>,
    /// `Config::reader_asleep`, through `CONFIG`'s mapping.
    flag: ReaderFlag,
    pacer: Pacer,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    socket: Option<OwnedFd>,
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
    stop: StopHandle,
    phase: Phase,
    /// Times the reader waited for the ring (wakeups plus poll intervals), for the debug log.
    waits: u64,
    /// When [`Poll::Idle`] is due next.
    next_tick: Instant,
    link_type: LinkType,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, in nanoseconds, sampled at open.
    mono_to_wall_ns: i128,
    stats: SourceStats,
    /// Kept last: the program and its maps live as long as the source.
    _ebpf: Ebpf,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("phase", &self.phase)
            .field("link_type", &self.link_type)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl LiveSource {
    /// Start capturing on `config.iface`.
    ///
    /// # Errors
    /// See [`LiveError`]: each variant names the cause and the fix.
    pub fn open(config: &LiveOptions) -> Result<Self, LiveError> {
        if EBPF_OBJECT.is_empty() {
            return Err(LiveError::ObjectMissing);
        }
        let iface = config.iface.as_str();
        // `any`: every device, through a SOCK_DGRAM socket bound to no device. The kernel
        // hands such a socket (and its filter) each packet from its network header, so
        // devices of every link type mix in one stream of raw IP packets (tcpdump's `any`
        // writes Linux cooked headers instead; the packets are the same). Loopback's
        // outgoing copies are skipped there, as libpcap does.
        let any = iface == ANY;
        let (ifindex, arphrd) = if any {
            (0, libc::ARPHRD_NONE)
        } else {
            device(iface)?
        };
        let (link_type, l2_flags) = match arphrd {
            _ if any => (
                LinkType::Raw,
                sniffer_ebpf::FLAG_NO_L2 | sniffer_ebpf::FLAG_SKIP_LO_OUTGOING,
            ),
            libc::ARPHRD_ETHER => (LinkType::Ethernet, 0),
            // `lo` carries an all-zero Ethernet header, and shows each packet twice
            // (outgoing, then incoming): keep one copy, as libpcap does.
            libc::ARPHRD_LOOPBACK => (LinkType::Ethernet, sniffer_ebpf::FLAG_SKIP_OUTGOING),
            libc::ARPHRD_NONE
            | ARPHRD_RAWIP
            | libc::ARPHRD_TUNNEL
            | libc::ARPHRD_TUNNEL6
            | libc::ARPHRD_SIT
            | libc::ARPHRD_IPGRE
            | ARPHRD_IP6GRE => (LinkType::Raw, sniffer_ebpf::FLAG_NO_L2),
            other => {
                return Err(LiveError::UnsupportedLink {
                    iface: iface.to_owned(),
                    arphrd: other,
                });
            }
        };
        let flags = l2_flags;

        let ebpf = load(config)?;
        let mut ebpf = ebpf;
        let logger = if log::max_level() >= log::LevelFilter::Debug {
            match aya_log::EbpfLogger::init(&mut ebpf) {
                Ok(l) => Some(l),
                Err(e) => {
                    log::warn!("eBPF logging unavailable: {e}");
                    None
                }
            }
        } else {
            None
        };

        fill_maps(&mut ebpf, config, flags)?;
        let counters = take_map::<PerCpuArray<MapData, u64>>(&mut ebpf, names::COUNTERS)?;
        let config_map =
            take_map::<Array<MapData, sniffer_ebpf::Config>>(&mut ebpf, names::CONFIG)?;
        let flag = ReaderFlag::map(config_map.map().fd().as_fd().as_raw_fd())
            .map_err(|e| LiveError::os("mapping the CONFIG map", iface, e))?;
        let ring = take_map::<RingBuf<MapData>>(&mut ebpf, names::RECORDS)?;
        let ring_fd = RingFd(ring.as_raw_fd());
        let ring = RingBox(NonNull::from(Box::leak(Box::new(ring))));

        let program: &mut SocketFilter = ebpf
            .program_mut(names::PROGRAM)
            .ok_or(LiveError::Load {
                source: EbpfError::ProgramError(ProgramError::InvalidName {
                    name: names::PROGRAM.to_owned(),
                }),
            })?
            .try_into()
            .map_err(|source| LiveError::Attach { source })?;
        program.load().map_err(program_load_error)?;
        if let Ok(Some(n)) = program.info().map(|i| i.verified_instruction_count()) {
            log::debug!("the verifier processed {n} instructions of the eBPF program");
        }

        // Protocol 0: the socket receives nothing until bound with a protocol.
        let socket = socket(
            libc::AF_PACKET,
            if any {
                libc::SOCK_DGRAM
            } else {
                libc::SOCK_RAW
            },
            "opening an AF_PACKET socket",
            iface,
        )?;
        program
            .attach(&socket)
            .map_err(|source| LiveError::Attach { source })?;
        bind(&socket, ifindex).map_err(|e| LiveError::os("binding to the device", iface, e))?;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| LiveError::os("starting the tokio runtime", iface, e))?;
        let (ready, timer, sigint, sigterm) = {
            let _guard = runtime.enter();
            let timer = Timer::new()
                .and_then(|t| {
                    // SAFETY: the Timer owns its descriptor, open and unchanged until the
                    // AsyncFd (which owns the Timer) is dropped.
                    unsafe { AsyncFd::register_with_interest(t, Interest::READABLE) }
                        .map_err(|e| e.into_parts().1)
                })
                .map_err(|e| LiveError::os("creating a timer", iface, e));
            let timer = match timer {
                Ok(t) => t,
                Err(e) => {
                    // SAFETY: leaked above, not shared with anything yet.
                    drop(unsafe { Box::from_raw(ring.0.as_ptr()) });
                    return Err(e);
                }
            };
            // SAFETY: the RingBuf (in `ring`) owns this descriptor and keeps it open and
            // unchanged until it is freed, which Drop does only after dropping the AsyncFd.
            let ready = unsafe { AsyncFd::register_with_interest(ring_fd, Interest::READABLE) };
            let ready = match ready {
                Ok(r) => r,
                Err(e) => {
                    // SAFETY: leaked above, not shared with anything yet.
                    drop(unsafe { Box::from_raw(ring.0.as_ptr()) });
                    return Err(LiveError::os(
                        "polling the ring buffer",
                        iface,
                        e.into_parts().1,
                    ));
                }
            };
            let sigint = tokio::signal::unix::signal(SignalKind::interrupt())
                .map_err(|e| LiveError::os("handling Ctrl-C", iface, e))?;
            let sigterm = tokio::signal::unix::signal(SignalKind::terminate())
                .map_err(|e| LiveError::os("handling SIGTERM", iface, e))?;
            (ready, timer, sigint, sigterm)
        };
        log::debug!(
            "capturing on {iface} (ifindex {ifindex}, ARPHRD {arphrd}, {link_type:?}, flags {flags:#x})"
        );
        Ok(Self {
            current: None,
            timer,
            runtime,
            ready: ManuallyDrop::new(ready),
            ring,
            counters,
            flag,
            pacer: Pacer::default(),
            logger,
            socket: Some(socket),
            sigint,
            sigterm,
            stop: StopHandle(Arc::default()),
            phase: Phase::Running,
            waits: 0,
            next_tick: Instant::now() + IDLE_TICK,
            link_type,
            mono_to_wall_ns: mono_to_wall_offset(),
            stats: SourceStats::default(),
            _ebpf: ebpf,
        })
    }

    /// A handle that stops this source from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The link type of every frame this source yields.
    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    /// The kernel program's counters, summed over CPUs.
    ///
    /// # Errors
    /// Reading the counter map failed.
    pub fn kernel_counters(&self) -> Result<KernelCounters, LiveError> {
        let mut sums = [0_u64; Counter::COUNT as usize];
        for c in Counter::ALL {
            let values = self
                .counters
                .get(&(c as u32), 0)
                .map_err(|source| LiveError::Map {
                    name: names::COUNTERS,
                    source,
                })?;
            sums[c as usize] = values.iter().sum();
        }
        Ok(KernelCounters {
            seen: sums[Counter::Seen as usize],
            matched: sums[Counter::Matched as usize],
            matched_bytes: sums[Counter::MatchedBytes as usize],
            ring_full: sums[Counter::RingFull as usize],
            copy_failed: sums[Counter::CopyFailed as usize],
            truncated: sums[Counter::Truncated as usize],
            non_first_fragment: sums[Counter::NonFirstFragment as usize],
        })
    }

    /// Close the socket (no new records), and start delivering what is left.
    fn begin_drain(&mut self) {
        // Closing waits (synchronize_net in packet_release) until no filter run is in
        // flight, so the ring holds every record there will be.
        self.socket = None;
        self.phase = Phase::Draining;
        log::debug!("live capture stopping: draining the ring buffer");
    }

    /// The ring is empty: waits until it may have data, a signal or a stop request comes,
    /// or the pacer's timeout ends (see [`super::wake`]); `tick` is when the caller wants
    /// control back at the latest.
    fn wait(&mut self, tick: Option<Instant>) {
        self.waits += 1;
        let plan = self.pacer.plan(Instant::now(), tick);
        if plan.set_flag {
            self.flag.set(true);
        }
        if let Err(e) = self.timer.get_ref().arm(plan.timeout) {
            // Not expected; waiting without a timeout could miss a tick.
            log::warn!("arming the live reader's timer: {e}");
        }
        let Self {
            runtime,
            ready,
            timer,
            sigint,
            sigterm,
            stop,
            ..
        } = self;
        let stop_requested = runtime.block_on(async {
            let timeout = async {
                loop {
                    let Ok(mut guard) = timer.readable().await else {
                        return;
                    };
                    if guard.get_inner().expired() {
                        return;
                    }
                    // An expiry from before the timer was re-armed: wait on.
                    guard.clear_ready();
                }
            };
            tokio::select! {
                ready = ready.readable() => {
                    if let Ok(mut guard) = ready {
                        // The caller drains until empty next, so clearing here loses nothing.
                        guard.clear_ready();
                    }
                    false
                }
                _ = sigint.recv() => true,
                _ = sigterm.recv() => true,
                // The stop flag is already set; the caller looks at it next.
                () = stop.0.wake.notified() => false,
                () = timeout => false,
            }
        });
        if stop_requested {
            self.stop.0.stop.store(true, Ordering::SeqCst);
            // The first Ctrl-C stops the capture cleanly; should what follows take long,
            // a second one ends the process at once, as the default action does.
            // SAFETY: restoring the default disposition has no memory-safety preconditions.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
            }
        }
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        // Order matters: the borrowed record, then the readiness registration, then the
        // ring they refer to.
        self.current = None;
        // SAFETY: dropped once, here; never used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.ready) };
        // SAFETY: leaked in `open`, freed only here; nothing borrows from it any more.
        drop(unsafe { Box::from_raw(self.ring.0.as_ptr()) });
    }
}

impl PacketSource for LiveSource {
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self.next_record(false)? {
            Poll::Frame(frame) => Ok(Some(frame)),
            Poll::Idle(_) | Poll::End => Ok(None),
        }
    }

    fn poll(&mut self) -> Result<Poll<'_>, CaptureError> {
        self.next_record(true)
    }

    fn stats(&self) -> SourceStats {
        let mut stats = self.stats.clone();
        match self.kernel_counters() {
            Ok(k) => stats.kernel = Some(k),
            Err(e) => log::warn!("{e}"),
        }
        stats
    }
}

impl LiveSource {
    /// The next record as a frame; with `idle`, [`Poll::Idle`] once per [`IDLE_TICK`]
    /// when there is none to deliver.
    fn next_record(&mut self, idle: bool) -> Result<Poll<'_>, CaptureError> {
        // Release the previous record: its space in the ring goes back to the kernel.
        self.current = None;
        loop {
            if self.phase == Phase::Running && self.stop.0.stop.load(Ordering::SeqCst) {
                self.begin_drain();
            }
            // SAFETY: no record is outstanding (released above), so this is the only
            // reference into the ring; the RingBox lives until Drop.
            let ring = unsafe { &mut *self.ring.0.as_ptr() };
            if let Some(item) = ring.next() {
                // SAFETY: see the invariants on LiveSource: the item is dropped before the
                // ring is used again or freed.
                let item: RingBufItem<'static> = unsafe { std::mem::transmute(item) };
                // SAFETY: the bytes live in the ring's mmapped data area, not in `item`, so
                // they stay put when `item` moves into `current`, which keeps them unconsumed.
                let record: &'static [u8] =
                    unsafe { std::slice::from_raw_parts(item.as_ptr(), item.len()) };
                let Some((head, data)) = record.split_at_checked(RecordHeader::LEN) else {
                    continue;
                };
                // SAFETY: RecordHeader is repr(C) plain old data and `head` is exactly its size.
                let header: RecordHeader =
                    unsafe { head.as_ptr().cast::<RecordHeader>().read_unaligned() };
                // The record is a size class, at least the header and `cap_len` bytes;
                // the rest is slack. A `cap_len` beyond the record is malformed: skip it.
                let Some(data) = data.get(..header.cap_len as usize) else {
                    continue;
                };
                let cap = data.len();
                let wall = i128::from(header.ts_mono_ns) + self.mono_to_wall_ns;
                let ts = Timestamp(u64::try_from(wall).unwrap_or(0));
                self.stats.frames += 1;
                self.stats.bytes += cap as u64;
                if (cap as u64) < u64::from(header.wire_len) {
                    self.stats.truncated += 1;
                }
                self.current = Some(Current(item));
                if self.pacer.record() {
                    self.flag.set(false);
                }
                return Ok(Poll::Frame(Frame {
                    ts,
                    link_type: self.link_type,
                    // Borrowed from `current` for as long as `self` is borrowed.
                    data,
                    orig_len: header.wire_len,
                }));
            }
            match self.phase {
                Phase::Running => {
                    if idle {
                        let now = Instant::now();
                        if now >= self.next_tick {
                            self.next_tick = now + IDLE_TICK;
                            let wall = clock_ns(libc::CLOCK_REALTIME);
                            return Ok(Poll::Idle(Timestamp(u64::try_from(wall).unwrap_or(0))));
                        }
                    }
                    self.wait(idle.then_some(self.next_tick));
                }
                Phase::Draining => {
                    log::debug!(
                        "live capture: {} records in {} waits for the ring",
                        self.stats.frames,
                        self.waits
                    );
                    self.phase = Phase::Done;
                    if let Some(logger) = &mut self.logger {
                        logger.flush();
                    }
                    return Ok(Poll::End);
                }
                Phase::Done => return Ok(Poll::End),
            }
        }
    }
}

/// The device's ifindex and ARPHRD type, looked up in the calling thread's network
/// namespace (sysfs would show the mount namespace's view instead).
fn device(iface: &str) -> Result<(u32, u16), LiveError> {
    let no_such = || LiveError::NoSuchDevice {
        iface: iface.to_owned(),
    };
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ || iface.contains(['/', '\0']) {
        return Err(no_such());
    }
    let sock = socket(
        libc::AF_INET,
        libc::SOCK_DGRAM,
        "opening a socket to query the device",
        iface,
    )?;
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(iface.as_bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFINDEX reads ifr_name and writes ifr_ifindex of a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFINDEX, &raw mut req) } < 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::ENODEV) {
            no_such()
        } else {
            LiveError::os("looking up the device", iface, e)
        });
    }
    // SAFETY: written by the ioctl above.
    let ifindex = unsafe { req.ifr_ifru.ifru_ifindex };
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifr_hwaddr.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &raw mut req) } < 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::ENODEV) {
            no_such()
        } else {
            LiveError::os("looking up the device's link type", iface, e)
        });
    }
    // SAFETY: written by the ioctl above.
    let arphrd = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    Ok((ifindex as u32, arphrd))
}

/// A new close-on-exec socket (protocol 0); `what` and `iface` name a failure.
fn socket(
    domain: libc::c_int,
    kind: libc::c_int,
    what: &'static str,
    iface: &str,
) -> Result<OwnedFd, LiveError> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(LiveError::os(what, iface, io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor we own; closed by OwnedFd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn load(config: &LiveOptions) -> Result<Ebpf, LiveError> {
    let log_level = log::max_level() as u8;
    let addrs = u32::try_from(config.filter.addrs.len().max(1)).unwrap_or(u32::MAX);
    EbpfLoader::new()
        .map_max_entries(names::RECORDS, config.ring_bytes)
        .map_max_entries(names::ADDRS, addrs)
        .override_global(aya_log::LEVEL, &log_level, false)
        .load(EBPF_OBJECT)
        .map_err(object_load_error)
}

/// What a failure to load the object means for the user.
fn object_load_error(e: EbpfError) -> LiveError {
    match e {
        EbpfError::MapError(MapError::CreateError { name, io_error }) => {
            if is_permission(&io_error) {
                LiveError::NotPermitted {
                    what: "creating eBPF maps",
                    source: io_error,
                }
            } else if name == names::RECORDS && io_error.raw_os_error() == Some(libc::EINVAL) {
                // Kernels before 5.8 do not know the map type.
                LiveError::NoRingBuffer {
                    release: kernel_release(),
                    source: io_error,
                }
            } else {
                LiveError::Load {
                    source: EbpfError::MapError(MapError::CreateError { name, io_error }),
                }
            }
        }
        source => LiveError::Load { source },
    }
}

/// What a failure to load the program into the kernel means for the user.
fn program_load_error(e: ProgramError) -> LiveError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            if io_error.raw_os_error() == Some(libc::EPERM) {
                LiveError::NotPermitted {
                    what: "loading the eBPF program",
                    source: io_error,
                }
            } else {
                let log = verifier_log.to_string();
                log::debug!("verifier log:\n{log}");
                LiveError::Rejected {
                    log,
                    source: io_error,
                }
            }
        }
        source => LiveError::Attach { source },
    }
}

fn fill_maps(ebpf: &mut Ebpf, config: &LiveOptions, flags: u32) -> Result<(), LiveError> {
    let map_err = |name| move |source| LiveError::Map { name, source };
    let filter = &config.filter;
    let mut program: Array<_, sniffer_ebpf::FilterProgram> =
        Array::try_from(map_mut(ebpf, names::FILTER)?).map_err(map_err(names::FILTER))?;
    program
        .set(0, *filter.program, 0)
        .map_err(map_err(names::FILTER))?;
    let mut ports: Array<_, u64> =
        Array::try_from(map_mut(ebpf, names::PORT_BITS)?).map_err(map_err(names::PORT_BITS))?;
    for &(index, word) in &filter.port_words {
        ports
            .set(index, word, 0)
            .map_err(map_err(names::PORT_BITS))?;
    }
    let mut addrs: LpmTrie<_, [u8; sniffer_ebpf::ADDR_KEY_BYTES], u8> =
        LpmTrie::try_from(map_mut(ebpf, names::ADDRS)?).map_err(map_err(names::ADDRS))?;
    for &(prefix_len, data) in &filter.addrs {
        addrs
            .insert(&Key::new(prefix_len, data), 1, 0)
            .map_err(map_err(names::ADDRS))?;
    }
    let mut cfg: Array<_, sniffer_ebpf::Config> =
        Array::try_from(map_mut(ebpf, names::CONFIG)?).map_err(map_err(names::CONFIG))?;
    cfg.set(
        0,
        sniffer_ebpf::Config {
            snaplen: config.snaplen,
            flags,
            wakeup_bytes: (config.ring_bytes / 16).min(WAKEUP_BYTES),
            reader_asleep: 0,
        },
        0,
    )
    .map_err(map_err(names::CONFIG))?;
    Ok(())
}

fn map_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::maps::Map, LiveError> {
    ebpf.map_mut(name).ok_or_else(|| LiveError::Map {
        name,
        source: MapError::InvalidName {
            name: name.to_owned(),
        },
    })
}

fn take_map<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, LiveError>
where
    M: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| LiveError::Map {
        name,
        source: MapError::InvalidName {
            name: name.to_owned(),
        },
    })?;
    M::try_from(map).map_err(|source| LiveError::Map { name, source })
}

/// `bind(2)` the packet socket to the device, for all protocols.
fn bind(socket: &OwnedFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: a valid sockaddr_ll and its size.
    let ret = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    // SAFETY: all-zero is a valid timespec; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and pointer.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC: the monotonic reading bracketed by two wall-clock
/// readings, best of a few tries (the tightest bracket).
fn mono_to_wall_offset() -> i128 {
    (0..5)
        .map(|_| {
            let r1 = clock_ns(libc::CLOCK_REALTIME);
            let m = clock_ns(libc::CLOCK_MONOTONIC);
            let r2 = clock_ns(libc::CLOCK_REALTIME);
            (r2 - r1, (r1 + r2) / 2 - m)
        })
        .min_by_key(|&(spread, _)| spread)
        .map_or(0, |(_, offset)| offset)
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_no_such_device() {
        let err = device("nosuchdev0xyz").unwrap_err();
        assert!(
            matches!(err, LiveError::NoSuchDevice { ref iface } if iface == "nosuchdev0xyz"),
            "{err:?}"
        );
        assert!(matches!(
            device("a-name-far-too-long-for-linux").unwrap_err(),
            LiveError::NoSuchDevice { .. }
        ));
    }

    #[test]
    fn loopback_is_known() {
        let (ifindex, arphrd) = device("lo").unwrap();
        assert!(ifindex >= 1);
        assert_eq!(arphrd, libc::ARPHRD_LOOPBACK);
    }

    #[test]
    fn wall_offset_is_plausible() {
        let off = mono_to_wall_offset();
        let wall = clock_ns(libc::CLOCK_REALTIME);
        // The epoch of CLOCK_MONOTONIC is boot: the offset is the boot time, in the past.
        assert!(off > 0 && off < wall, "{off} {wall}");
    }

    /// The error paths this kernel cannot produce: built from the errors aya returns.
    #[test]
    fn issue2_old_kernel_and_verifier_rejection_get_clear_errors() {
        let errno = io::Error::from_raw_os_error;
        // A kernel before 5.8 refuses to create the ring buffer map with EINVAL.
        let e = object_load_error(EbpfError::MapError(MapError::CreateError {
            name: names::RECORDS.to_owned(),
            io_error: errno(libc::EINVAL),
        }));
        assert!(matches!(e, LiveError::NoRingBuffer { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("no BPF ring buffer") && msg.contains("5.8"),
            "{msg}"
        );
        assert!(msg.contains(&kernel_release()), "{msg}");
        // EINVAL on another map is not blamed on the kernel's age.
        let e = object_load_error(EbpfError::MapError(MapError::CreateError {
            name: names::ADDRS.to_owned(),
            io_error: errno(libc::EINVAL),
        }));
        assert!(matches!(e, LiveError::Load { .. }), "{e:?}");
        // Without CAP_BPF, map creation fails with EPERM.
        let e = object_load_error(EbpfError::MapError(MapError::CreateError {
            name: names::RECORDS.to_owned(),
            io_error: errno(libc::EPERM),
        }));
        assert!(matches!(e, LiveError::NotPermitted { .. }), "{e:?}");
        assert!(e.to_string().contains("CAP_BPF"), "{e}");

        // The verifier refuses with EACCES (or EINVAL) and a log, which is kept.
        let e = program_load_error(ProgramError::LoadError {
            io_error: errno(libc::EACCES),
            verifier_log: aya_obj::VerifierLog::new("R1 invalid mem access 'scalar'".into()),
        });
        let LiveError::Rejected { ref log, .. } = e else {
            panic!("{e:?}")
        };
        assert!(log.contains("invalid mem access"), "{log}");
        let msg = e.to_string();
        assert!(
            msg.contains("refused") && msg.contains("RUST_LOG=debug"),
            "{msg}"
        );
        let e = program_load_error(ProgramError::LoadError {
            io_error: errno(libc::EPERM),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        });
        assert!(matches!(e, LiveError::NotPermitted { .. }), "{e:?}");
    }
}

#[cfg(test)]
mod load_tests {
    use std::time::Duration;

    use super::*;

    /// A capture of `port` on loopback, with a small ring.
    fn open_lo(port: u16) -> LiveSource {
        LiveSource::open(&LiveOptions {
            iface: "lo".into(),
            filter: KernelFilter::ports(&[port]),
            snaplen: 65536,
            ring_bytes: 1 << 20,
        })
        .unwrap()
    }

    /// True as root; otherwise says the test is skipped, or fails under
    /// `SNIFFER_TESTS_STRICT` (set by `cargo xtask test` for the full suite).
    fn root_or_skip() -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        assert!(
            std::env::var_os("SNIFFER_TESTS_STRICT").is_none(),
            "this test needs root (SNIFFER_TESTS_STRICT is set)"
        );
        eprintln!("skipped: needs root");
        false
    }

    /// Loads the real program (so the verifier runs) and captures one loopback connection.
    #[test]
    fn verifier_accepts_and_loopback_is_captured() {
        if !root_or_skip() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut src = open_lo(port);
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        drop(c);
        drop(listener.accept().unwrap());
        std::thread::sleep(Duration::from_millis(50));
        src.stop_handle().stop();
        let mut n = 0;
        while let Some(f) = src.next_frame().unwrap() {
            assert_eq!(f.link_type, LinkType::Ethernet);
            n += 1;
        }
        let k = src.kernel_counters().unwrap();
        eprintln!("{n} frames, {k:?}");
        assert!(n >= 3);
        assert_eq!(k.matched, n);
    }

    /// With nothing to capture, `poll` says so about once per [`IDLE_TICK`], with the
    /// time now; `next_frame` would keep waiting.
    #[test]
    fn issue2_poll_reports_a_quiet_device() {
        if !root_or_skip() {
            return;
        }
        // A port nothing uses: the filter matches nothing.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut src = open_lo(port);
        let started = Instant::now();
        for _ in 0..2 {
            match src.poll().unwrap() {
                Poll::Idle(now) => {
                    let wall = clock_ns(libc::CLOCK_REALTIME);
                    assert!((wall - i128::from(now.0)).abs() < 1_000_000_000, "{now}");
                }
                other => panic!("expected idle, got {other:?}"),
            }
        }
        let took = started.elapsed();
        assert!(took >= IDLE_TICK * 2 && took < IDLE_TICK * 10, "{took:?}");
        src.stop_handle().stop();
        assert!(matches!(src.poll().unwrap(), Poll::End));
    }
}
