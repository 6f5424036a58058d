//! One clean stop for every command: SIGINT (Ctrl-C) or SIGTERM stops reading; the
//! command then ends the open sessions (rows printed, files finalised as incomplete, a
//! `capture -w` file finished), prints its summary, and exits 0 saying "interrupted". A
//! second signal ends the process at once, as usual.
//!
//! A live source catches both signals itself (it drains the ring buffer first); capture
//! files stop through [`sniffer::capture::STOP`], which the handler here sets. Every
//! command opens its input with [`open`].

use std::sync::atomic::Ordering;

use sniffer::capture::{self, CaptureError, Input, PacketSource, STOP};

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Open `input`, stoppable by SIGINT and SIGTERM.
///
/// # Errors
/// As [`capture::open`].
pub fn open(input: &Input) -> Result<Box<dyn PacketSource>, CaptureError> {
    if let Input::Files(_) = input {
        // Before opening: opening reads ahead, and may wait on a pipe.
        catch_signals();
    }
    capture::open(input)
}

/// Catch SIGINT and SIGTERM: the first asks for a clean stop, the next one (the default
/// action restored) ends the process. Not restarted: a read waiting on a pipe returns.
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is fully initialised (zeroed, then the fields we use).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&raw mut sa.sa_mask);
            libc::sigaction(sig, &raw const sa, std::ptr::null_mut());
        }
    }
}

/// A signal asked for a stop while files were read.
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}
