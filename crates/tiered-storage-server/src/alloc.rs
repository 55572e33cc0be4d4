//! One allocator setting for the binary that runs the service.
//!
//! A batch put's body is one allocation of up to `max_batch_bytes`. glibc serves the first such
//! block with `mmap` and returns it when freed, but that free raises glibc's dynamic mmap
//! threshold to the block's size, so later bodies come from the heap and their memory stays
//! with the process when freed. Loading 1M records in 9.5 MB bodies left the idle service at
//! 153 MB (`benches/http.rs`, BENCHMARKS.md). Fixing the threshold instead (`mallopt`) brought
//! that to 104–108 MB but cost ingest about 15%; trimming the heap between samples keeps the
//! allocation path as it is and gives the freed memory back while the service idles.

use std::sync::atomic::{AtomicBool, Ordering};

static TRIM: AtomicBool = AtomicBool::new(false);

/// Have the service give memory its allocator holds free back to the operating system after
/// each metrics sample (every `sample_interval`, 5 s by default), on Linux with glibc
/// (`malloc_trim`); elsewhere it does nothing. For a binary to call once at start (the
/// `tiered-storage` command does before serving); a library should leave its host's allocator
/// alone, so the service does not do this unless asked.
pub fn trim_freed_memory_while_serving() {
    TRIM.store(true, Ordering::Relaxed);
}

/// Give free heap memory back, if the binary asked for it. Blocking (takes the allocator's
/// locks): run off the async workers.
pub(crate) fn trim_if_asked() {
    if !TRIM.load(Ordering::Relaxed) {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only returns free memory of glibc's arenas to the kernel; it
        // takes the allocator's locks and is safe to call from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}
