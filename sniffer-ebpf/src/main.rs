//! The kernel program: an eBPF socket filter that selects TCP packets by port and copies
//! them into a ring buffer. It returns 0, so its socket itself receives nothing.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{macros::socket_filter, programs::SkBuffContext};

    #[socket_filter]
    pub fn sniffer(_ctx: SkBuffContext) -> i64 {
        0
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

/// On the host this binary is an empty stub, so `cargo build --workspace` and clippy work;
/// the real program is built for the bpf target by `sniffer/build.rs`.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
