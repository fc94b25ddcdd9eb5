//! glibc malloc settings for this process, set once at start-up by the binary.
//!
//! glibc raises its mmap threshold whenever a mapped block is freed (up to 32 MiB), so after the
//! first few REST pages, connector batches and fetch responses (a few hundred KiB each) those
//! blocks come from the heap instead, and the heap keeps their pages once they are free: `run
//! --offline` over 1.2M candles peaked at 121 MB of RSS for a heap peak of 76 MB. Fixing the trim
//! threshold at glibc's initial 128 KiB also fixes the mmap threshold there (mallopt(3)): such
//! blocks are mapped and unmapped again, and free memory at the heap's top goes back to the
//! system. Measured in `docs/performance.md` (peak RSS down a quarter, the REST path a few percent
//! slower). An operator's own `MALLOC_*` tunables win: nothing is changed when any is set.

/// The trim (and so the mmap) threshold: glibc's initial value, no longer raised.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 128 * 1024;

/// Applies the settings above unless the environment sets glibc's malloc tunables itself.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let operator_set = std::env::vars_os().any(|(k, _)| {
            let k = k.to_string_lossy();
            k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES"
        });
        if !operator_set {
            // SAFETY: mallopt only changes allocator parameters; any thread may call it at any time.
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
        }
    }
}
