//! When the live reader sleeps, and what wakes it.
//!
//! Under load the kernel wakes the reader once per batch (each time the bytes waiting in
//! the ring cross a multiple of `Config::wakeup_bytes`), and the reader polls every
//! [`POLL_INTERVAL`] for the smaller batches in between: one wakeup per batch, not one
//! per packet. Polling costs about a hundred wakeups a second, though, also when nothing
//! comes. So a reader that has found the ring empty for a whole poll interval stops
//! polling ([`Pacer`]):
//!
//! 1. **Polling**: wait for a batch wakeup, at most [`POLL_INTERVAL`].
//! 2. **Arming**: after a poll interval without a record, set `Config::reader_asleep`
//!    ([`ReaderFlag`]); from then on the kernel wakes the reader with every record. Poll
//!    once more for a whole interval: a record whose filter run read the flag just before
//!    it was set is in the ring by the end of it.
//! 3. **Asleep**: wait until a record wakes the reader, or until the caller's next tick
//!    (the pipeline's once-a-second idle tick; none for `next_frame`), or a signal, or
//!    [`super::live::StopHandle::stop`].
//!
//! The first record after a quiet spell clears the flag and puts the reader back to
//! polling. A quiet device thus costs at most one wakeup a second (none without a tick),
//! the first packets after a quiet spell are read at once, and under load nothing
//! changes.
//!
//! Waits end on a [`Timer`] (a timerfd) rather than on tokio's timer: tokio's wheel wakes
//! a thread that sleeps for a second twice, once to move the timer down a level of the
//! wheel and once when it is due.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd as _, OwnedFd, RawFd},
    sync::atomic::{Ordering, fence},
    time::{Duration, Instant},
};

use memmap2::{MmapOptions, MmapRaw};
use sniffer_ebpf::Config;

/// How long a polling reader waits for a batch wakeup before it looks at the ring anyway.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Where the reader is between polling and sleeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Records came recently: poll. `empty_since`: when the ring was first found empty
    /// since the last record.
    Polling { empty_since: Option<Instant> },
    /// The flag is set since `since`; one more poll interval covers a record in flight.
    Arming { since: Instant },
    /// The flag is set and armed: only a record, a tick, a signal or a stop wakes the reader.
    Asleep,
}

/// What the reader does next, decided by [`Pacer::plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    /// Set `Config::reader_asleep` before waiting.
    pub set_flag: bool,
    /// How long to wait at most; `None`: until woken.
    pub timeout: Option<Duration>,
}

/// The reader's sleep policy, apart from the clock and the kernel, so it can be tested.
///
/// Invariant: the flag is set exactly while the state is `Arming` or `Asleep` (the caller
/// applies [`Plan::set_flag`] and [`Pacer::record`]'s answer).
#[derive(Debug)]
pub(super) struct Pacer {
    state: State,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            state: State::Polling { empty_since: None },
        }
    }
}

impl Pacer {
    /// A record was read. Returns `true` if the flag must be cleared.
    pub(super) fn record(&mut self) -> bool {
        let was_asleep = !matches!(self.state, State::Polling { .. });
        self.state = State::Polling { empty_since: None };
        was_asleep
    }

    /// The ring is empty at `now` and the reader is about to wait; `tick` is when the
    /// caller wants control back whatever happens (`None`: never).
    pub(super) fn plan(&mut self, now: Instant, tick: Option<Instant>) -> Plan {
        let until_tick = tick.map(|t| t.saturating_duration_since(now));
        let within = |since: Instant| POLL_INTERVAL.checked_sub(now.duration_since(since));
        match self.state {
            State::Polling { empty_since: None } => {
                self.state = State::Polling {
                    empty_since: Some(now),
                };
                Plan::poll(POLL_INTERVAL, until_tick)
            }
            State::Polling {
                empty_since: Some(since),
            } => match within(since) {
                Some(left) if !left.is_zero() => Plan::poll(left, until_tick),
                _ => {
                    self.state = State::Arming { since: now };
                    Plan {
                        set_flag: true,
                        ..Plan::poll(POLL_INTERVAL, until_tick)
                    }
                }
            },
            State::Arming { since } => match within(since) {
                Some(left) if !left.is_zero() => Plan::poll(left, until_tick),
                _ => {
                    self.state = State::Asleep;
                    Plan::sleep(until_tick)
                }
            },
            State::Asleep => Plan::sleep(until_tick),
        }
    }
}

impl Plan {
    fn poll(interval: Duration, until_tick: Option<Duration>) -> Self {
        Self {
            set_flag: false,
            timeout: Some(until_tick.map_or(interval, |t| t.min(interval))),
        }
    }

    fn sleep(until_tick: Option<Duration>) -> Self {
        Self {
            set_flag: false,
            timeout: until_tick,
        }
    }
}

/// `Config::reader_asleep`, written in place through a shared mapping of the mmapable
/// `CONFIG` map: no `bpf()` call, so it works after the privilege drop on every kernel.
pub(super) struct ReaderFlag {
    map: MmapRaw,
}

impl ReaderFlag {
    /// Maps the `CONFIG` array whose descriptor is `fd` (created `BPF_F_MMAPABLE`).
    pub(super) fn map(fd: RawFd) -> io::Result<Self> {
        let map = MmapOptions::new().len(size_of::<Config>()).map_raw(fd)?;
        Ok(Self { map })
    }

    /// Tells the kernel whether the reader sleeps until a record wakes it.
    pub(super) fn set(&self, asleep: bool) {
        let field = self
            .map
            .as_mut_ptr()
            .wrapping_add(std::mem::offset_of!(Config, reader_asleep))
            .cast::<u32>();
        // SAFETY: the mapping holds index 0 of the array, a whole `Config`, at offset 0
        // (an mmapable array's values start page-aligned), so `field` is an aligned u32
        // inside it; the kernel only reads it.
        unsafe { field.write_volatile(u32::from(asleep)) };
        // Make the store visible before the reader looks at the ring again.
        fence(Ordering::SeqCst);
    }
}

/// A timerfd on CLOCK_MONOTONIC: one wakeup when a wait times out.
pub(super) struct Timer(OwnedFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Timer {
    /// A new, disarmed, non-blocking timer.
    pub(super) fn new() -> io::Result<Self> {
        // SAFETY: plain timerfd_create(2).
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Expires once, `after` from now (`None`: never); forgets an earlier expiry.
    pub(super) fn arm(&self, after: Option<Duration>) -> io::Result<()> {
        // A zero it_value disarms: a due timer expires a nanosecond from now instead.
        let after = after.map(|d| d.max(Duration::from_nanos(1)));
        let value = after.map_or(
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            |d| libc::timespec {
                tv_sec: d.as_secs().try_into().unwrap_or(libc::time_t::MAX),
                tv_nsec: d.subsec_nanos().into(),
            },
        );
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: a valid timerfd and itimerspec; the old value is not wanted.
        if unsafe {
            libc::timerfd_settime(self.0.as_raw_fd(), 0, &raw const spec, std::ptr::null_mut())
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether it expired since it was armed (and consumes the expiry).
    pub(super) fn expired(&self) -> bool {
        let mut count = [0_u8; 8];
        // SAFETY: reads 8 bytes into an 8-byte buffer from a descriptor we own.
        let n = unsafe { libc::read(self.0.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        n == 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A quiet ring: poll one interval, arm for one more, then sleep until the tick (or
    /// forever without one); a record puts the reader back to polling and clears the flag.
    #[test]
    fn issue12_quiet_ring_polls_arms_then_sleeps_until_the_tick() {
        let t0 = Instant::now();
        let tick = t0 + Duration::from_secs(1);
        let mut p = Pacer::default();
        assert_eq!(
            p.plan(t0, Some(tick)),
            Plan {
                set_flag: false,
                timeout: Some(POLL_INTERVAL)
            }
        );
        // Woken early (a stale batch wakeup): poll for the rest of the interval.
        assert_eq!(p.plan(t0 + 4 * MS, Some(tick)).timeout, Some(6 * MS));
        let armed = p.plan(t0 + 10 * MS, Some(tick));
        assert_eq!(
            armed,
            Plan {
                set_flag: true,
                timeout: Some(POLL_INTERVAL)
            }
        );
        // Arming lasts a whole interval even if the wait ends early.
        assert_eq!(
            p.plan(t0 + 11 * MS, Some(tick)),
            Plan {
                set_flag: false,
                timeout: Some(9 * MS)
            }
        );
        assert_eq!(
            p.plan(t0 + 20 * MS, Some(tick)),
            Plan {
                set_flag: false,
                timeout: Some(980 * MS)
            }
        );
        assert_eq!(p.plan(t0 + 500 * MS, None).timeout, None);
        assert!(
            p.record(),
            "a sleeping reader that gets a record clears the flag"
        );
        assert!(!p.record(), "a polling one has nothing to clear");
        assert_eq!(p.plan(t0 + 600 * MS, None).timeout, Some(POLL_INTERVAL));
    }

    /// Records keep coming: the reader never arms, so the kernel keeps batching.
    #[test]
    fn issue12_steady_traffic_never_arms() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        for i in 0..1000 {
            let plan = p.plan(t0 + i * 9 * MS, None);
            assert!(!plan.set_flag);
            assert_eq!(plan.timeout, Some(POLL_INTERVAL));
            assert!(!p.record());
        }
    }

    /// A record while arming also clears the flag; a tick sooner than the poll interval
    /// shortens the wait.
    #[test]
    fn issue12_record_while_arming_and_a_near_tick() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        p.plan(t0, None);
        assert!(p.plan(t0 + 10 * MS, None).set_flag);
        assert!(p.record());
        assert_eq!(
            p.plan(t0 + 12 * MS, Some(t0 + 15 * MS)).timeout,
            Some(3 * MS)
        );
    }

    #[test]
    fn issue12_timer_expires_once_and_rearming_forgets() {
        let t = Timer::new().unwrap();
        assert!(!t.expired(), "a new timer is disarmed");
        t.arm(Some(Duration::ZERO)).unwrap();
        std::thread::sleep(5 * MS);
        assert!(t.expired());
        assert!(!t.expired(), "one expiry, consumed");
        t.arm(Some(Duration::ZERO)).unwrap();
        std::thread::sleep(5 * MS);
        t.arm(Some(Duration::from_secs(60))).unwrap();
        assert!(!t.expired(), "re-arming forgets an expiry not yet read");
        t.arm(None).unwrap();
        assert!(!t.expired());
    }
}
