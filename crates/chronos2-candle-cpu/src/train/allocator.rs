//! glibc's allocator settings for training.
//!
//! A training step allocates and frees hundreds of activation-sized buffers (hundreds of KB to
//! MBs). By default glibc serves those from fresh `mmap`s and gives them back at each free (or
//! trims them off the heap's top), so every op wrote its output into new pages: page faults, their
//! zeroing and, with several threads, the unmapping's TLB shootdowns (11% of a single-threaded
//! chronos2-mini step's time in the kernel's page-fault path). Training keeps freed memory in the
//! heap for the next buffer instead. On 16 cores (H200 host, one run) chronos2-mini LoRA at 32
//! rows went from 2.58 to 3.08 steps/s with these settings given as glibc's environment variables;
//! set here, they gave the same steps/s as those variables.

/// Sets glibc's thresholds once: buffers up to 32 MiB (glibc's most) from the heap, at most 1 GiB
/// of free heap kept, the heap grown 256 MiB at a time. No-op on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes glibc's thresholds (it takes the allocator's lock).
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TOP_PAD, 256 << 20);
            }
        });
    }
}
